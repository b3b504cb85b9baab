"""REST handlers; importing this package fills ROUTES."""

from signaling.handlers import (
    accounts,
    audit,
    meetings,
    moderation,
    realtime,
    recordings,
    system,
)
from signaling.handlers.table import ROUTES

__all__ = [
    "ROUTES",
    "accounts",
    "audit",
    "meetings",
    "moderation",
    "realtime",
    "recordings",
    "system",
]
