"""Background work on recordings: composing one file to watch, crash recovery, retention
(of recordings, and of the audit trail's rows: the same hourly check).

Composition runs as a separate process (`python -m compose`), never on the event loop
that carries meetings; its progress lines are stored so the API can show them.

These jobs run once per deployment: only the worker that leads (`signaling.leader`) runs
them. A worker that stops a recording while another leads leaves it 'processing'; the leader
finds it within WATCH_SECONDS. Recovery marks a 'recording' interrupted only when its
worker's lease ran out (`TERTULIA_RECORDING_LEASE_SECONDS`), so a recording another live
worker is making is never touched; on SQLite (one process, nothing else can be recording)
everything still 'recording' at start-up was interrupted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from compose.probe import probe_track_file
from signaling.config import Settings
from signaling.leader import Leadership
from signaling.recordings import lifecycle
from storage import audit, recordings
from storage.database import Database
from storage.models import Recording, RecordingTrack
from storage.types import utcnow

log = logging.getLogger(__name__)
COMPOSED_NAME = "composed.mp4"
PROGRESS_EVERY_SECONDS = 1.0
RETENTION_CHECK_SECONDS = 3600.0
WATCH_SECONDS = 5.0  # how often the leader looks for orphaned and stopped recordings


def recordings_root(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "recordings"


class ComposeQueue:
    """One composition at a time (it is CPU-heavy), in submission order."""

    def __init__(
        self, settings: Settings, database: Database, leadership: Leadership | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self.leadership = leadership or Leadership(database)
        self.lease = timedelta(seconds=settings.recording_lease_seconds)
        self._composing: int | None = None
        self.root = recordings_root(settings)
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._queued: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._process: asyncio.subprocess.Process | None = None

    def directory(self, recording: Recording) -> Path:
        return self.settings.data_dir.resolve() / recording.directory

    def path(self, recording: Recording, track: RecordingTrack) -> Path:
        return self.directory(recording) / track.file

    async def start(self) -> None:
        if self.database.is_sqlite:  # one process: whatever is 'recording' now was cut off
            await self.recover(stale_before=utcnow())
        self.leadership.start()
        self._tasks.append(asyncio.create_task(self._lead(), name="background-jobs"))

    async def _lead(self) -> None:
        """Run the jobs while this process leads; stop them when it no longer does."""
        while True:
            await self.leadership.wait_leading()
            jobs = [
                asyncio.create_task(self._work(), name="compose-worker"),
                asyncio.create_task(self._watch(), name="recording-watch"),
            ]
            if self.settings.recording_retention_days or self.settings.audit_retention_days:
                jobs.append(asyncio.create_task(self._retain(), name="retention"))
            try:
                await self.leadership.wait_lost()
            finally:
                for job in jobs:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
                self._kill_composer()

    async def close(self) -> None:
        self._kill_composer()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.leadership.close()

    def _kill_composer(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()

    @property
    def queued(self) -> int:
        """Recordings waiting for composition in this process."""
        return self._queue.qsize()

    @property
    def composing(self) -> bool:
        return self._composing is not None

    def enqueue(self, recording_id: int) -> None:
        """Compose soon: here when this process leads, else the leader finds it ('processing')."""
        if not self.leadership.is_leader:
            return
        if recording_id not in self._queued and recording_id != self._composing:
            self._queued.add(recording_id)
            self._queue.put_nowait(recording_id)

    async def _watch(self) -> None:
        while True:
            try:
                await self.recover(stale_before=utcnow() - self.lease)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording recovery failed")
            await asyncio.sleep(WATCH_SECONDS)

    async def recover(self, *, stale_before: datetime) -> None:
        """Recordings still 'recording' whose lease ran out before `stale_before` (their
        worker died) become 'interrupted', with the duration their files hold; 'processing'
        ones go (back) in the queue."""
        async with self.database.session() as db:
            for recording in await recordings.orphaned_recordings(db, stale_before):
                files = [
                    (track, *await asyncio.to_thread(probe_track_file, self.path(recording, track)))
                    for track in recording.tracks
                ]
                saved = lifecycle.interrupted(
                    recording, files, "the server stopped while recording"
                )
                log.warning("recording %s was interrupted; %.1f s saved", recording.id, saved)
            pending = [r.id for r in await recordings.recordings_in_state(db, "processing")]
        for recording_id in pending:
            self.enqueue(recording_id)

    async def _work(self) -> None:
        while True:
            recording_id = await self._queue.get()
            self._queued.discard(recording_id)
            self._composing = recording_id
            try:
                await self._compose(recording_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("composing recording %s failed", recording_id)
                await self._fail(recording_id, f"{type(exc).__name__}: {exc}")
            finally:
                self._composing = None

    async def _compose(self, recording_id: int) -> None:
        async with self.database.session() as db:
            recording = await recordings.get_recording(db, recording_id)
            if recording is None or recording.state != "processing":
                return
            directory = self.directory(recording)
            manifest = [
                {
                    "path": str(self.path(recording, t)),
                    "kind": t.kind,
                    "source": t.source,
                    "participant_id": t.participant_id,
                    "display_name": t.display_name,
                    "start_offset": t.start_offset,
                    "duration": t.duration_seconds or None,
                }
                for t in recording.tracks
            ]
        if not manifest:
            await self._fail(recording_id, "nothing was recorded (no track published)")
            return
        manifest_path = directory / "manifest.json"
        output = directory / COMPOSED_NAME
        await asyncio.to_thread(manifest_path.write_text, json.dumps(manifest))
        self._process = process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "compose",
            str(manifest_path),
            str(output),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        stderr_task = asyncio.create_task(process.stderr.read())
        last_saved = 0.0
        loop = asyncio.get_running_loop()
        async for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "progress" in message and loop.time() - last_saved >= PROGRESS_EVERY_SECONDS:
                last_saved = loop.time()
                await self._change(recording_id, lifecycle.progress, float(message["progress"]))
        code = await process.wait()
        stderr = (await stderr_task).decode(errors="replace").strip()
        self._process = None
        if code != 0 or not output.exists():
            reason = stderr.splitlines()[-1] if stderr else f"compose exited with {code}"
            await self._fail(recording_id, reason)
            return
        size = output.stat().st_size
        await self._change(recording_id, lambda r: lifecycle.composed(r, COMPOSED_NAME, size))
        log.info("recording %s composed (%d bytes)", recording_id, size)

    async def _fail(self, recording_id: int, reason: str) -> None:
        log.error("recording %s: composition failed: %s", recording_id, reason)
        await self._change(recording_id, lifecycle.composition_failed, reason)

    async def _change(self, recording_id: int, change: Callable[..., None], *args: object) -> None:
        """Apply a lifecycle change to the recording, if it still exists (it may have been
        deleted while it was composed)."""
        async with self.database.session() as db:
            recording = await recordings.get_recording(db, recording_id)
            if recording is not None:
                change(recording, *args)

    async def delete(self, recording: Recording) -> None:
        """Remove the files; the caller deletes the rows in its own transaction."""
        directory = self.directory(recording)
        if directory.is_relative_to(self.root):
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def apply_retention(self) -> int:
        """Both retention settings; returns how many recordings were deleted."""
        await self.apply_audit_retention()
        return await self.apply_recording_retention()

    async def apply_audit_retention(self) -> int:
        """Delete the audit rows older than `TERTULIA_AUDIT_RETENTION_DAYS` (0: keep them)."""
        days = self.settings.audit_retention_days
        if not days:
            return 0
        async with self.database.session() as db:
            deleted = await audit.delete_before(db, utcnow() - timedelta(days=days))
        if deleted:
            log.info("retention: deleted %d audit rows older than %d days", deleted, days)
        return deleted

    async def apply_recording_retention(self) -> int:
        days = self.settings.recording_retention_days
        if not days:
            return 0
        cutoff = utcnow() - timedelta(days=days)
        async with self.database.session() as db:
            old = await recordings.recordings_started_before(db, cutoff)
            for recording in old:
                await self.delete(recording)
                await audit.record(
                    db,
                    user_id=None,
                    action="retention-delete",
                    recording_id=recording.id,
                    detail=f"older than {days} days",
                )
                await db.delete(recording)
        if old:
            log.info("retention: deleted %d recordings older than %d days", len(old), days)
        return len(old)

    async def _retain(self) -> None:
        while True:
            for apply in (self.apply_audit_retention, self.apply_recording_retention):
                try:
                    await apply()
                except Exception:  # one failing does not stop the other
                    log.exception("applying a retention setting failed")
            await asyncio.sleep(RETENTION_CHECK_SECONDS)
