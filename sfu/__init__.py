"""Tertulia media: a selective forwarding unit on aiortc that never decodes or encodes."""

from rtp.aiortc_hooks import self_check as check_media_stack

from .api import (
    MAX_LAST_N,
    MAX_PINNED,
    AiortcCompatibilityError,
    IceServer,
    MediaEvents,
    MediaSettings,
    NegotiationError,
    PipeError,
    ReceivePolicy,
    RecordingError,
    SlotAssignment,
    Source,
)
from .recording import RecordedTrack, RecordingEvents, RecordingSummary, TrackSummary
from .server import MediaServer

__all__ = [
    "MAX_LAST_N",
    "MAX_PINNED",
    "AiortcCompatibilityError",
    "IceServer",
    "MediaEvents",
    "MediaServer",
    "MediaSettings",
    "NegotiationError",
    "PipeError",
    "ReceivePolicy",
    "RecordedTrack",
    "RecordingError",
    "RecordingEvents",
    "RecordingSummary",
    "SlotAssignment",
    "Source",
    "TrackSummary",
    "check_media_stack",
]
