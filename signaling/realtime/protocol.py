"""The WebSocket signaling protocol, version 1: its limits and its codes.

`docs/protocol.md` is the written contract. Its executable form is this module (limits, error
codes, leave reasons, close codes), `signaling.realtime.messages` (what a client may send,
validated strictly) and `signaling.realtime.events` (what the server sends).
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 512 * 1024  # an SDP with many receive slots runs to a few hundred KiB
MAX_SDP_CHARS = 400_000
CHAT_MAX_CHARS = 2000
CHAT_HISTORY = 50
HELLO_TIMEOUT_SECONDS = 10.0


class ErrorCode:
    """Error codes sent in `error` events and close reasons; each is listed in protocol.md."""

    MALFORMED_JSON = "malformed-json"
    UNKNOWN_TYPE = "unknown-type"
    INVALID_MESSAGE = "invalid-message"
    NOT_AUTHENTICATED = "not-authenticated"
    MISSING_TOKEN = "missing-token"
    ALREADY_AUTHENTICATED = "already-authenticated"
    UNSUPPORTED_VERSION = "unsupported-version"
    MESSAGE_TOO_LARGE = "message-too-large"
    RATE_LIMITED = "rate-limited"
    NOT_YOUR_PARTICIPANT = "not-your-participant"
    CHAT_DISABLED = "chat-disabled"
    CHAT_TOO_LONG = "chat-too-long"
    NOT_HOST = "not-host"
    BAD_SDP = "bad-sdp"
    NO_COMMON_CODEC = "no-common-codec"
    BAD_TRACK_MAP = "bad-track-map"
    NO_MEDIA_PORTS = "no-media-ports"  # the server's ICE port range is full
    MEDIA_FAILED = "media-failed"
    NOT_ADMITTED = "not-admitted"  # a waiting person sent something other than ping or leave
    MUTED_BY_MODERATOR = "muted-by-moderator"
    SERVER_DRAINING = "server-draining"  # a hello reached a worker that is leaving


class LeaveReason:
    """`participant-left.reason` and the close frame's reason: why someone left."""

    LEFT = "left"  # sent `leave`
    DISCONNECTED = "disconnected"  # the socket closed without `leave`
    TIMED_OUT = "timed-out"  # missed the server's keep-alive pings
    REPLACED = "replaced"  # the same person joined again from another connection
    MEDIA_FAILED = "media-failed"  # ICE/DTLS failed, or an offer could not be applied
    FLOOD = "flood"  # too many messages, or too slow to read events
    MESSAGE_TOO_LARGE = "message-too-large"
    MEETING_ENDED = "meeting-ended"
    REMOVED = "removed"  # a moderator removed them
    DENIED = "denied"  # a moderator refused them at the waiting room
    SERVER_SHUTDOWN = "server-shutdown"
    SERVER_ERROR = "server-error"


class CloseCode:
    """WebSocket close codes (4000-4999 are the application's)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down: reconnect
    ABNORMAL = 1006  # no close frame: the keep-alive timed out or the network dropped
    MESSAGE_TOO_BIG = 1009
    PROTOCOL = 4400  # first message was not a valid hello, or wrong version
    UNAUTHORIZED = 4401  # missing, invalid or expired token
    FORBIDDEN = 4403  # account disabled
    NOT_FOUND = 4404  # no such meeting
    HANDSHAKE_TIMEOUT = 4408
    CONFLICT = 4409  # meeting ended or full
    REPLACED = 4410  # the same person joined again from another connection
    MEETING_ENDED = 4411  # the host ended the meeting while you were in it
    REMOVED = 4412  # a moderator removed you
    DENIED = 4413  # a moderator refused you at the waiting room
    FLOOD = 4429  # too many messages
    MEDIA_FAILED = 4502  # the media connection (ICE/DTLS) failed
    DRAINING = 4503  # this worker is leaving: connect again at once (you land elsewhere)
    SERVER_ERROR = 1011
