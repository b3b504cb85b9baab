"""What an id in a path, a query or a token may look like, before it reaches a query.

ASCII digits only: `str.isdigit()` also accepts superscripts and circled digits, and `int()`
reads Arabic-Indic or full-width digits, which would alias real ids. Database ids are
32-bit integers on PostgreSQL, so a larger number names nothing.
"""

from __future__ import annotations

import re

MAX_ID = 2**31 - 1
_ID = re.compile(r"[0-9]{1,10}", re.ASCII)
# Room ids are made by `storage.meetings.new_room_id` (URL-safe base64).
_ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


def parse_id(raw: object) -> int | None:
    """A database id written in ASCII digits within the column's range, else None."""
    if not isinstance(raw, str) or not _ID.fullmatch(raw):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def is_room_id(raw: str) -> bool:
    return bool(_ROOM_ID.fullmatch(raw))
