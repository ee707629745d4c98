"""Small pieces the apps' admin modules share."""

import uuid

from django.utils.html import format_html


def short_id(value: uuid.UUID | str) -> str:
    """A UUID as a list column: its first 8 characters, the whole id on hover (the search box
    takes the whole id)."""
    text = str(value)
    return format_html('<span title="{}">{}</span>', text, text[:8])


class ReadOnlyPagesMixin:
    """A model the engine or the API owns: its page is for reading (no Save buttons, and a
    POST to it is refused), while the list's actions, which need the change permission,
    still work."""

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)
