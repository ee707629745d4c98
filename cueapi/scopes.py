"""API key scopes (issue #20) and their one enforcement point, a DRF permission.

A view declares what a narrower key may do with `key_scopes = {"<method>": {scopes}}`; a
`full` key (and a session) may do everything. Undeclared, a view lets `read_only` keys read
(GET, HEAD, OPTIONS) and nothing else, so a new view is safe without any declaration: its
writes need a `full` key, and a `worker` key reaches only the views that name it.
"""

from rest_framework.permissions import BasePermission

from cueapi.errors import AppError

FULL = "full"
READ_ONLY = "read_only"
WORKER = "worker"
SCOPES = (FULL, READ_ONLY, WORKER)

SAFE_METHODS = ("get", "head", "options")
READERS = frozenset({READ_ONLY})
FULL_ONLY = frozenset()


def allowed_scopes(view, method: str) -> frozenset:
    """The scopes (besides `full`) that may call `method` on `view`."""
    method = method.lower()
    declared = getattr(view, "key_scopes", {})
    if method == "head":  # HEAD is GET without the body
        method = "get" if "get" in declared else method
    if method in declared:
        return frozenset(declared[method])
    return READERS if method in SAFE_METHODS else FULL_ONLY


def request_scope(request) -> str:
    """The scope of the request's credentials: the API key's, or `full` for a session."""
    return getattr(request.auth, "scope", FULL)


class KeyScopePermission(BasePermission):
    """403 `insufficient_scope` when the request's key scope may not call this view/method."""

    def has_permission(self, request, view):
        scope = request_scope(request)
        if scope == FULL or request.auth is None:
            return True  # no credentials: IsAuthenticated (or AllowAny) decides
        allowed = allowed_scopes(view, request.method)
        if scope in allowed:
            return True
        needed = " or ".join(f"'{s}'" for s in sorted(allowed | {FULL}))
        raise AppError(
            "insufficient_scope",
            f"This API key has scope '{scope}'; {request.method} {request.path} needs a {needed} key.",
            403,
        )
