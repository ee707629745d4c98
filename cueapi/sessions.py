"""Session JWTs (SERVER.md §1.2): HS256, claims sub/email/type/iat/exp, 24 h lifetime.

Each also carries `ver`, the user's session_version: regenerating the API key bumps it, so
every session issued before stops working. A token without exp or ver is refused.

The signing key is SESSION_SECRET when set, otherwise derived from SECRET_KEY, so sessions
work on a fresh install. The same secret derives the Fernet key for the encrypted API-key
copy that `GET /v1/auth/key` may reveal.
"""

import base64
import hashlib
import uuid
from datetime import timedelta

import jwt
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

SESSION_LIFETIME = timedelta(hours=24)


class SessionError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _session_secret():
    return settings.SESSION_SECRET or hashlib.sha256(
        b"cueapi-session:" + settings.SECRET_KEY.encode()
    ).hexdigest()


def issue_session_token(user) -> str:
    now = timezone.now()
    claims = {
        "sub": str(user.pk),
        "email": user.email,
        "type": "session",
        "ver": user.session_version,
        "iat": int(now.timestamp()),
        "exp": int((now + SESSION_LIFETIME).timestamp()),
    }
    return jwt.encode(claims, _session_secret(), algorithm="HS256")


def user_for_session_token(token: str):
    """The active user of a valid session token, read from the database (never from the auth
    cache, so a revoked version is seen at once); SessionError otherwise."""
    try:
        claims = jwt.decode(token, _session_secret(), algorithms=["HS256"],
                            options={"require": ["exp", "sub", "type", "ver"]})
    except jwt.ExpiredSignatureError:
        raise SessionError("session_expired", "Session expired. Please log in again.") from None
    except jwt.PyJWTError:
        raise SessionError("invalid_session", "Invalid session token") from None
    if claims.get("type") != "session":
        raise SessionError("invalid_session", "Invalid session token")
    try:
        user_id = uuid.UUID(str(claims.get("sub")))
    except ValueError:
        raise SessionError("invalid_session", "Invalid session token") from None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise SessionError("user_not_found", "User not found")
    if claims["ver"] != user.session_version:
        raise SessionError("session_revoked", "Session ended: the API key was regenerated. Please log in again.")
    return user


def _fernet():
    key = hashlib.sha256(_session_secret().encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_api_key(api_key):
    return _fernet().encrypt(api_key.encode()).decode()


def decrypt_api_key(ciphertext):
    """The plaintext key, or None if the ciphertext no longer decrypts (secret changed)."""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError):
        return None
