"""The media vocabulary every side shares: what a track is, and what a receive slot carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["microphone", "camera", "screen"]
Kind = Literal["audio", "video"]

SOURCE_KIND: dict[str, Kind] = {"microphone": "audio", "camera": "video", "screen": "video"}


@dataclass(frozen=True)
class SlotAssignment:
    """What one receive m-line (mid) of a subscriber carries; participant None = idle."""

    mid: str
    kind: Kind
    participant_id: str | None
    source: Source | None
