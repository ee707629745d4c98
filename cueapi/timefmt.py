"""The two timestamp spellings of the contract (SERVER.md §1.5).

`ts_z`: model fields (`2026-04-21T09:00:00Z`); `ts_iso`: hand-built strings
(`2026-04-21T09:00:00+00:00`). Fractional seconds appear only when non-zero.
"""

from datetime import timezone


def ts_iso(value):
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat()


def ts_z(value):
    if value is None:
        return None
    return ts_iso(value).replace("+00:00", "Z")
