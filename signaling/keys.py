"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from signaling.admission import WaitingRoom
from signaling.audit import AuditLog
from signaling.config import Settings
from signaling.drain import Drain
from signaling.lifecycle import Lifecycle
from signaling.meetings import MeetingService
from signaling.moderation import Moderation
from signaling.realtime.limits import PendingHandshakes
from signaling.realtime.live import LiveMeetings
from signaling.recordings.control import RecordingControl
from signaling.recordings.jobs import ComposeQueue
from signaling.throttle import RefusalSampler, SignInThrottle
from signaling.tokens import TokenService
from storage.database import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
TOKENS = web.AppKey("tokens", TokenService)
THROTTLE = web.AppKey("sign_in_throttle", SignInThrottle)
TOKEN_REFUSALS = web.AppKey("token_refusals", RefusalSampler)  # which go to the audit trail
HANDSHAKES = web.AppKey("pending_handshakes", PendingHandshakes)

LIVE = web.AppKey("live", LiveMeetings)
JOBS = web.AppKey("compose_jobs", ComposeQueue)
RECORDINGS = web.AppKey("recordings", RecordingControl)
MEETINGS = web.AppKey("meetings", MeetingService)
AUDIT = web.AppKey("audit", AuditLog)
WAITING_ROOM = web.AppKey("waiting_room", WaitingRoom)
MODERATION = web.AppKey("moderation", Moderation)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
DRAIN = web.AppKey("drain", Drain)
