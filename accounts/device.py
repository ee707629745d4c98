"""Passwordless login for terminals: device code + magic link (SERVER.md §3.3).

The CLI (or cueapi-worker) picks a device code and shows a link; the person opens it, types
their email, clicks the emailed link; the terminal's poll then receives the account's API key
(every account keeps an encrypted copy, however it was created) and a one-time session token,
which POST /v1/auth/session exchanges for a JWT. An account without a usable copy (created
by an older version, or the server's secret changed) gets `existing_user` and no key.
"""

import copy
import re
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.core.mail.backends import console
from django.db import transaction
from django.utils import timezone

from accounts.models import DeviceCode, User
from accounts.services import user_create
from cueapi import ratelimit
from cueapi.errors import AppError
from cueapi.ids import new_token
from cueapi.sessions import decrypt_api_key, issue_session_token

LIFETIME = timedelta(seconds=900)
# What the clients pick (`cueapi login`: ABCD-EFGH; `cueapi-worker login`: 8 lower-case letters
# and digits), with room to spare. Nothing else is accepted, so a code is safe on any page.
DEVICE_CODE_FORMAT = re.compile(r"[A-Za-z0-9-]{6,128}")


def device_code_is_well_formed(device_code: str) -> bool:
    return DEVICE_CODE_FORMAT.fullmatch(device_code) is not None


def _limited(message):
    return AppError("rate_limit_exceeded", message, 429)


def device_code_create(*, device_code, client_ip, now=None):
    now = now or timezone.now()
    if not device_code_is_well_formed(device_code):
        raise AppError("invalid_device_code", "Device code must be 6-128 letters, digits or hyphens", 400)
    if not ratelimit.fixed_window_allows(f"auth_dc:{client_ip}", 5, 3600):
        raise _limited("Too many device code requests")
    with transaction.atomic():
        existing = DeviceCode.objects.select_for_update().filter(device_code=device_code).first()
        if existing is not None:
            live = existing.expires_at > now and existing.status not in (DeviceCode.Status.EXPIRED, DeviceCode.Status.CLAIMED)
            if live:
                raise AppError("device_code_exists", "Device code already in use", 409)
            existing.delete()
        DeviceCode.objects.create(device_code=device_code, expires_at=now + LIFETIME)
    return f"{settings.BASE_URL}/auth/device?code={device_code}", int(LIFETIME.total_seconds())


def device_code_submit_email(*, device_code, email, client_ip, now=None):
    now = now or timezone.now()
    if not ratelimit.fixed_window_allows(f"auth_ml:{email.lower()}", 3, 3600):
        raise _limited("Too many magic link requests for this email")
    if not ratelimit.fixed_window_allows(f"auth_ml_ip:{client_ip}", 10, 3600):
        raise _limited("Too many magic link requests")
    row = DeviceCode.objects.filter(device_code=device_code).first()
    if row is None:
        raise AppError("device_code_not_found", "Device code not found", 404)
    if row.expires_at <= now:
        raise AppError("device_code_expired", "Device code expired", 400)
    if row.status != DeviceCode.Status.PENDING:
        raise AppError("invalid_status", f"Device code status is '{row.status}', expected 'pending'", 400)
    token = new_token()
    updated = DeviceCode.objects.filter(pk=row.pk, status=DeviceCode.Status.PENDING).update(
        email=email, verification_token=token, status=DeviceCode.Status.EMAIL_SENT)
    if not updated:
        raise AppError("invalid_status", "Device code status is 'email_sent', expected 'pending'", 400)
    link = f"{settings.BASE_URL}/v1/auth/verify?token={token}&device_code={device_code}"
    try:
        send_mail("Your CueAPI login link",
                  f"Open this link to log in to CueAPI:\n\n{link}\n\nIt expires in 15 minutes. "
                  "If you did not ask for it, ignore this email.\n",
                  settings.DEFAULT_FROM_EMAIL, [email])
    except Exception:  # noqa: BLE001 - the reference swallows send failures too
        pass


# The magic link's secret part, as device_code_submit_email writes it.
LINK_TOKEN = re.compile(r"(\btoken=)[^&\s]+")


class MaskedConsoleEmailBackend(console.EmailBackend):
    """Django's console backend (the default, EMAIL_URL=consolemail://) with magic-link tokens
    masked: the console is the server's log, and a working login link logs in whoever reads it."""

    def write_message(self, message):
        masked = copy.copy(message)
        masked.body, hidden = LINK_TOKEN.subn(r"\1HIDDEN", message.body)
        if hidden:
            masked.body += ("\n[The login token is hidden in the server log. To receive login links, "
                            "set EMAIL_URL to an SMTP server, or to filemail:////absolute/dir for local use.]\n")
        super().write_message(masked)


class VerifyError(Exception):
    pass


@transaction.atomic
def device_code_verify(*, token, device_code, now=None):
    """The magic link: approve the code, creating the user if new. Returns the email."""
    now = now or timezone.now()
    row = DeviceCode.objects.select_for_update().filter(device_code=device_code).first()
    if row is None:
        raise VerifyError("Device code not found")
    if row.expires_at <= now:
        raise VerifyError("Device code expired")
    if row.status != DeviceCode.Status.EMAIL_SENT:
        raise VerifyError("Invalid device code status")
    if not row.verification_token or token != row.verification_token:
        raise VerifyError("Invalid verification token")
    user = User.objects.filter(email=row.email).first()
    if user is None:
        user, _ = user_create(email=row.email)
        row.api_key_encrypted = user.api_key_encrypted
    row.user = user
    row.status = DeviceCode.Status.APPROVED
    row.session_token = new_token()
    row.save(update_fields=["user", "status", "session_token", "api_key_encrypted"])
    return row.email


def device_code_poll(*, device_code, now=None):
    now = now or timezone.now()
    if not ratelimit.fixed_window_allows(f"auth_poll:{device_code}", 30, 60):
        raise _limited("Poll rate limit exceeded")
    with transaction.atomic():
        row = DeviceCode.objects.select_for_update().filter(device_code=device_code).first()
        if row is None:
            return {"status": "expired"}
        if row.expires_at <= now:
            if row.status not in (DeviceCode.Status.EXPIRED, DeviceCode.Status.CLAIMED, DeviceCode.Status.APPROVED):
                row.status = DeviceCode.Status.EXPIRED
                row.save(update_fields=["status"])
            return {"status": "expired"}
        if row.status != DeviceCode.Status.APPROVED:
            return {"status": row.status}
        body = {"status": "approved", "email": row.email}
        if row.api_key_encrypted:  # a new user: the key, once
            body["api_key"] = decrypt_api_key(row.api_key_encrypted)
        elif row.user and row.user.api_key_encrypted and decrypt_api_key(row.user.api_key_encrypted):
            body["api_key"] = decrypt_api_key(row.user.api_key_encrypted)
        else:
            body["existing_user"] = True
        if row.session_token:
            body["session_token"] = row.session_token
        row.status = DeviceCode.Status.CLAIMED
        row.api_key_encrypted = None
        row.save(update_fields=["status", "api_key_encrypted"])
    return body


@transaction.atomic
def session_exchange(*, token):
    """A one-time session token (from the magic link) for a 24 h session JWT."""
    row = DeviceCode.objects.select_for_update().filter(
        session_token=token, status__in=[DeviceCode.Status.APPROVED, DeviceCode.Status.CLAIMED]).first() if token else None
    if row is None or row.user_id is None:
        raise AppError("invalid_token", "Invalid or expired session token", 401)
    user = User.objects.filter(pk=row.user_id, is_active=True).first()
    if user is None:
        raise AppError("user_not_found", "User not found", 401)
    row.session_token = None
    row.save(update_fields=["session_token"])
    return issue_session_token(user), user.email


def delete_expired_device_codes(*, now):
    deleted, _ = DeviceCode.objects.filter(expires_at__lt=now - timedelta(hours=24)).delete()
    return deleted
