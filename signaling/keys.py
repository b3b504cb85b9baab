"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from signaling.compose_jobs import ComposeQueue
from signaling.config import Settings
from signaling.live import LiveMeetings
from signaling.ratelimit import PendingHandshakes
from signaling.recording_control import RecordingControl
from signaling.throttle import SignInThrottle
from signaling.tokens import TokenService
from storage.database import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
TOKENS = web.AppKey("tokens", TokenService)
THROTTLE = web.AppKey("sign_in_throttle", SignInThrottle)
HANDSHAKES = web.AppKey("pending_handshakes", PendingHandshakes)

LIVE = web.AppKey("live", LiveMeetings)
JOBS = web.AppKey("compose_jobs", ComposeQueue)
RECORDINGS = web.AppKey("recordings", RecordingControl)
