"""What a recorded track file holds, read without decoding: for crash recovery (a server
killed mid-recording leaves files that end abruptly) and for the library's durations."""

from __future__ import annotations

import logging
from pathlib import Path

import av

log = logging.getLogger(__name__)


def probe_track_file(path: Path) -> tuple[float, int]:
    """Duration (s, from the last readable packet) and size of a track file, even a
    truncated one; (0, 0) when nothing can be read. Blocking: run in a thread."""
    if not path.exists():
        return 0.0, 0
    size = path.stat().st_size
    last = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams[0]
            for packet in container.demux(stream):
                if packet.pts is not None:
                    last = max(last, int(packet.pts * packet.time_base * 1000))
    except (av.FFmpegError, OSError, IndexError) as exc:
        log.info("probing %s stopped early: %s", path, exc)
    return last / 1000, size
