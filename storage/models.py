"""SQLAlchemy 2 typed mappings: the tables Tertulia keeps.

Enumerations are stored as short strings with CHECK constraints (portable across SQLite and
PostgreSQL, and readable in a plain SQL shell).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.types import UTCDateTime, utcnow

UserRole = Literal["admin", "member"]
MeetingStatus = Literal["scheduled", "active", "ended"]
ParticipantRole = Literal["host", "moderator", "participant"]
ChatKind = Literal["text", "system", "file"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class User(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'member')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lower-cased, so the unique constraint is case-insensitive on every backend.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="member")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class Meeting(Timestamped, Base):
    __tablename__ = "meetings"
    __table_args__ = (
        CheckConstraint("status IN ('scheduled', 'active', 'ended')", name="status"),
        CheckConstraint("max_participants BETWEEN 2 AND 500", name="max_participants"),
        CheckConstraint("duration_minutes BETWEEN 1 AND 1440", name="duration"),
        Index("ix_meetings_host_id", "host_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scheduled_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)
    max_participants: Mapped[int] = mapped_column(Integer, default=50)
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    enable_recording: Mapped[bool] = mapped_column(Boolean, default=False)
    enable_chat: Mapped[bool] = mapped_column(Boolean, default=True)
    # moderation (issue 12): may people turn a source back on after a moderator stopped it;
    # no new joins while locked; end the meeting at scheduled_start + duration_minutes
    allow_self_unmute: Mapped[bool] = mapped_column(Boolean, default=True)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    end_on_schedule: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    host: Mapped[User] = relationship(lazy="joined")


class Participation(Base):
    """One row per visit: a rejoin opens a new row, so the history is kept.

    A visit is open while `left_at` is NULL. One opened over REST (`POST .../join`) only
    holds a seat until `held_until`; the signaling connection that follows confirms it
    (`held_until` NULL). An unconfirmed visit stops counting when its hold runs out.
    """

    __tablename__ = "participations"
    __table_args__ = (
        CheckConstraint("role IN ('host', 'moderator', 'participant')", name="role"),
        Index("ix_participations_meeting_open", "meeting_id", "left_at"),
        Index("ix_participations_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default="participant")
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The worker whose socket carries the visit (several workers: docs/scaling.md); visits of a
    # worker that is gone are closed by the others.
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The last media state the participant announced (signaling `media-state`).
    microphone_on: Mapped[bool] = mapped_column(Boolean, default=False)
    camera_on: Mapped[bool] = mapped_column(Boolean, default=False)
    screen_on: Mapped[bool] = mapped_column(Boolean, default=False)


MemberRole = Literal["moderator", "participant"]


class MeetingMember(Base):
    """What the server decided about one person in one meeting, across their visits.

    The admission state of the waiting room lives here and only here: `admitted_at` is set
    when the person was let in (by a moderator, or by entering a meeting without a waiting
    room) and cleared when they are removed; `denied_until` keeps a denied person from
    knocking again for a while; `barred` keeps a removed person out for good. `role` is the
    meeting role the host gave (the host themself is `meetings.host_id`, not a row here).
    """

    __tablename__ = "meeting_members"
    __table_args__ = (
        CheckConstraint("role IN ('moderator', 'participant')", name="role"),
        UniqueConstraint("meeting_id", "user_id", name="uq_meeting_members_meeting_user"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default="participant")
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    denied_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    barred: Mapped[bool] = mapped_column(Boolean, default=False)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint("kind IN ('text', 'system', 'file')", name="kind"),
        Index("ix_chat_messages_meeting_created", "meeting_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="text")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User | None] = relationship(lazy="joined")


RecordingState = Literal["recording", "processing", "ready", "failed", "interrupted"]


class Recording(Base):
    """A server-side recording of a meeting: its manifest and the composed file."""

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint(
            "state IN ('recording', 'processing', 'ready', 'failed', 'interrupted')",
            name="state",
        ),
        Index("ix_recordings_meeting_id", "meeting_id"),
        Index("ix_recordings_started_at", "started_at"),
        # One recording in progress per meeting, deployment-wide: two workers asked at once
        # cannot both start one (the second insert fails), and a hand-over is claimed once.
        Index(
            "uq_recordings_one_live",
            "meeting_id",
            unique=True,
            sqlite_where=text("state = 'recording'"),
            postgresql_where=text("state = 'recording'"),
        ),
        {"sqlite_autoincrement": True},  # ids are never reused: the audit trail refers to them
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    started_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    stopped_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="recording")
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    directory: Mapped[str] = mapped_column(String(255))  # relative to the data dir
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # all track files
    composed_file: Mapped[str | None] = mapped_column(String(255), nullable=True)
    composed_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # composition, 0..1
    # The worker that records it, and when that worker last said it still does (its lease):
    # recovery marks a 'recording' interrupted only once the lease has run out.
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    meeting: Mapped[Meeting] = relationship(lazy="joined")
    tracks: Mapped[list[RecordingTrack]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="RecordingTrack.id"
    )
    speakers: Mapped[list[RecordingSpeaker]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="RecordingSpeaker.at_seconds"
    )


class RecordingTrack(Base):
    """One track file of a recording (one participant's microphone, camera or screen)."""

    __tablename__ = "recording_tracks"
    __table_args__ = (
        CheckConstraint("kind IN ('audio', 'video')", name="kind"),
        CheckConstraint("source IN ('microphone', 'camera', 'screen')", name="source"),
        Index("ix_recording_tracks_recording_id", "recording_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    participant_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    file: Mapped[str] = mapped_column(String(255))  # file name inside the recording directory
    codec: Mapped[str] = mapped_column(String(16))
    start_offset: Mapped[float] = mapped_column(Float)
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class RecordingSpeaker(Base):
    """The dominant speaker from `at_seconds` into the recording until the next row."""

    __tablename__ = "recording_speakers"
    __table_args__ = (Index("ix_recording_speakers_recording_id", "recording_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"))
    at_seconds: Mapped[float] = mapped_column(Float)
    participant_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    display_name: Mapped[str] = mapped_column(String(100))


AuditOutcome = Literal["ok", "refused"]


class AuditEvent(Base):
    """One security-relevant act, done or refused: who (`user_id`, from `address`), what
    (`action`), to which meeting, recording or person, when. No foreign key to the meeting
    or recording, so the trail outlives what it describes; `room_id` is kept as text."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("outcome IN ('ok', 'refused')", name="outcome"),
        Index("ix_audit_events_created_at", "created_at"),
        Index("ix_audit_events_user_id", "user_id"),
        Index("ix_audit_events_action", "action"),
        Index("ix_audit_events_room_id", "room_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(8), default="ok")
    room_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recording_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
