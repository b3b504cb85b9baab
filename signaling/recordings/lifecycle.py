"""The states a recording goes through, and the only code that changes them.

```
recording ──stopped──▶ processing ──composed──▶ ready
   │    └──stopped by a write error, or a crash──▶ interrupted
   └──could not start──▶ failed ◀──composition failed── processing
failed | interrupted | ready ──compose again──▶ processing
```

Every function changes a recording loaded in its caller's session and commits nothing on its
own: a change of state and what goes with it (track durations, sizes, the composed file) are
stored together, in the caller's transaction, or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from sfu import RecordingSummary
from signaling.errors import ApiError
from signaling.leader import WORKER_ID
from storage import recordings
from storage.models import Recording, RecordingTrack
from storage.types import utcnow

COMPOSABLE = ("failed", "interrupted", "ready")


async def begin(
    db: AsyncSession, *, meeting_id: int, started_by_id: int | None, worker_id: str = WORKER_ID
) -> Recording:
    """A new recording made by `worker_id`. Raises sqlalchemy's IntegrityError when the
    meeting already has one in progress (the partial unique index, deployment-wide)."""
    recording = await recordings.create_recording(
        db, meeting_id=meeting_id, started_by_id=started_by_id, directory=""
    )
    recording.directory = f"recordings/{recording.id}"  # relative to the data directory
    recording.worker_id, recording.heartbeat_at = worker_id, utcnow()  # the lease starts
    return recording


def could_not_start(recording: Recording, reason: str) -> None:
    recording.state, recording.failure_reason, recording.stopped_at = "failed", reason, utcnow()


def stopped(
    recording: Recording,
    summary: RecordingSummary | None,
    stopped_by_id: int | None,
) -> bool:
    """Store what the recorder wrote; True when the recording goes on to composition."""
    recording.stopped_at = utcnow()
    recording.stopped_by_id = stopped_by_id
    if summary is not None:
        by_file = {s.track.name: s for s in summary.tracks}
        for track in recording.tracks:
            if (found := by_file.get(track.file)) is not None:
                track.duration_seconds = found.duration
                track.size_bytes = found.size_bytes
        recording.duration_seconds = summary.duration
        recording.size_bytes = sum(s.size_bytes for s in summary.tracks)
    if summary is not None and summary.error:
        recording.state, recording.failure_reason = "interrupted", summary.error
        return False
    recording.state, recording.progress = "processing", 0.0
    return summary is not None


def interrupted(
    recording: Recording,
    files: Iterable[tuple[RecordingTrack, float, int]],
    reason: str,
) -> float:
    """A recording the server stopped holding (it crashed): keep what its files hold.
    `files` gives each track's probed duration and size; returns the recording's duration."""
    total_size, longest = 0, 0.0
    for track, duration, size in files:
        track.duration_seconds, track.size_bytes = duration, size
        total_size += size
        longest = max(longest, track.start_offset + duration)
    recording.state, recording.failure_reason = "interrupted", reason
    recording.duration_seconds = round(longest, 3)
    recording.size_bytes = total_size
    return recording.duration_seconds


def compose_again(recording: Recording) -> None:
    if recording.state not in COMPOSABLE:
        raise ApiError(
            409, "not-composable", f"a recording in state {recording.state} cannot be composed now"
        )
    recording.state, recording.progress, recording.failure_reason = "processing", 0.0, None


def progress(recording: Recording, fraction: float) -> None:
    recording.progress = fraction


def composed(recording: Recording, file: str, size: int) -> None:
    recording.state, recording.progress, recording.failure_reason = "ready", 1.0, None
    recording.composed_file, recording.composed_size_bytes = file, size


def composition_failed(recording: Recording, reason: str) -> None:
    recording.state, recording.failure_reason = "failed", reason[:2000]
