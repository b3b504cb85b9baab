"""Offline composition of a recording: its per-track files into one file to watch.

Runs as its own process (`python -m compose MANIFEST OUTPUT`), after a recording stopped,
never on the event loop that carries meetings. It decodes and encodes with PyAV and
imports nothing of aiortc or the media server:

- `composer`: the output clock, decoding, the grid, the audio mix, encoding;
- `layout`: where each track goes on the canvas (pure geometry);
- `probe`: what a track file holds, without decoding (crash recovery, durations).
"""

from .composer import ComposeError, CompositionResult, TrackFile, compose, load_manifest
from .probe import probe_track_file

__all__ = [
    "ComposeError",
    "CompositionResult",
    "TrackFile",
    "compose",
    "load_manifest",
    "probe_track_file",
]
