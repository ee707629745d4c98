"""One error envelope for every error the service produces (SERVER.md §1.3).

Services raise `AppError`; nothing else builds error bodies. The DRF exception handler, the
Django 404/500 handlers and the 413/429 middleware all go through `error_response`.
"""

import logging
from collections.abc import Mapping

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions

logger = logging.getLogger("cueapi.errors")

# What FastAPI's JSONResponse writes, and DRF's JSONRenderer too: compact, UTF-8.
COMPACT_JSON = {"separators": (",", ":"), "ensure_ascii": False}


class AppError(Exception):
    """An error with a machine code, a human message and an HTTP status."""

    def __init__(self, code, message, status=400, *, details=None, headers=None, with_status=True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.headers = headers or {}
        # A few reference endpoints omit "status" inside the envelope (SERVER.md §11.16).
        self.with_status = with_status


class RequestValidationError(AppError):
    """Input failed validation: 422 `validation_error` with one detail per problem.

    `errors` is a list of (location, message) pairs, e.g. ("body.name", "Field required").
    The top-level message repeats the first one, as the reference does.
    """

    def __init__(self, errors):
        loc, msg = errors[0]
        super().__init__(
            "validation_error",
            f"{loc}: {msg}" if loc else msg,
            422,
            details=[{"field": loc, "message": m} for loc, m in errors],
        )


def errors_from_drf(detail, loc: str) -> list[tuple[str, str]]:
    """Flatten DRF's nested error structure into [(location, message), ...]."""
    if isinstance(detail, Mapping):
        out = []
        for key, value in detail.items():
            child = loc if key == "non_field_errors" else f"{loc}.{key}" if loc else str(key)
            out.extend(errors_from_drf(value, child))
        return out
    if isinstance(detail, list):
        out = []
        for index, item in enumerate(detail):
            if isinstance(item, (Mapping, list)):
                out.extend(errors_from_drf(item, f"{loc}.{index}"))
            else:
                out.append((loc, str(item)))
        return out
    return [(loc, str(detail))]


def error_body(code, message, status, details=None, with_status=True):
    error = {"code": code, "message": message}
    if with_status:
        error["status"] = status
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(code, message, status, *, details=None, headers=None, with_status=True):
    response = JsonResponse(
        error_body(code, message, status, details, with_status),
        status=status,
        json_dumps_params=COMPACT_JSON,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def app_error_response(exc):
    return error_response(
        exc.code,
        exc.message,
        exc.status,
        details=exc.details,
        headers=exc.headers,
        with_status=exc.with_status,
    )


# Codes for DRF's own exceptions, when they reach us (auth is mapped in authentication.py).
_DRF_MESSAGES = {
    drf_exceptions.NotFound: ("http_error", "Not Found"),
    drf_exceptions.MethodNotAllowed: ("http_error", "Method Not Allowed"),
    drf_exceptions.NotAcceptable: ("http_error", "Not Acceptable"),
    drf_exceptions.UnsupportedMediaType: ("http_error", "Unsupported Media Type"),
    drf_exceptions.ParseError: ("invalid_json", "Request body is not valid JSON"),
}


def exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every exception raised in an API view becomes the envelope."""
    if isinstance(exc, AppError):
        return app_error_response(exc)
    if isinstance(exc, Http404):
        return error_response("http_error", "Not Found", 404)
    if isinstance(exc, PermissionDenied):
        return error_response("http_error", "Forbidden", 403)
    if isinstance(exc, drf_exceptions.ValidationError):
        return app_error_response(RequestValidationError(errors_from_drf(exc.detail, "body")))
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        code = getattr(exc, "app_code", "invalid_api_key")
        message = getattr(exc, "app_message", "Missing or invalid Authorization header")
        return error_response(code, message, 401)
    for exc_type, (code, message) in _DRF_MESSAGES.items():
        if isinstance(exc, exc_type):
            return error_response(code, message, exc.status_code)
    if isinstance(exc, drf_exceptions.APIException):
        return error_response("http_error", str(exc.detail), exc.status_code)
    # Anything else is a bug: log it with its traceback, return nothing that could leak.
    logger.exception("Unhandled exception in %s", context.get("view").__class__.__name__)
    return internal_error_response()


def internal_error_response():
    return error_response("internal_error", "An internal error occurred", 500)


# Django-level handlers (urls.py): routes that don't exist, and non-API views that crash.
def handler404(request, exception=None):
    return error_response("http_error", "Not Found", 404)


def handler500(request):
    return internal_error_response()


def handler403(request, exception=None):
    return error_response("http_error", "Forbidden", 403)


def handler400(request, exception=None):
    return error_response("http_error", "Bad Request", 400)
