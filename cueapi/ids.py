"""Identifier and secret formats (SERVER.md §1.6)."""

import hashlib
import re
import secrets
import string

API_KEY_PREFIX = "cue_sk_"
_CUE_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_api_key():
    return API_KEY_PREFIX + secrets.token_hex(16)


def api_key_hash(api_key):
    return hashlib.sha256(api_key.encode()).hexdigest()


def api_key_prefix(api_key):
    return api_key[:12]


KEY_ID_PATTERN = re.compile(r"key_[a-z0-9]{16}")


def new_key_id():
    return "key_" + "".join(secrets.choice(_CUE_ID_ALPHABET) for _ in range(16))


def new_cue_id():
    return "cue_" + "".join(secrets.choice(_CUE_ID_ALPHABET) for _ in range(12))


def new_alert_channel_id():
    return "ach_" + "".join(secrets.choice(_CUE_ID_ALPHABET) for _ in range(12))


def new_webhook_secret():
    return "whsec_" + secrets.token_hex(32)


def new_alert_webhook_secret():
    return secrets.token_hex(32)


def new_token():
    """64 hex chars: magic-link verification tokens, one-time session tokens."""
    return secrets.token_hex(32)
