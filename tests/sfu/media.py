"""Test people who can be told apart at a receiver: a cast of distinct synthetic publishers.

Every persona publishes a camera clip of its own frame size, a sine tone of its own
frequency and a microphone level of its own; every screen share is one 800x600 testsrc2
clip, larger than any camera. The server forwards without decoding, so a receiver
recognises a publisher by what arrives: each frame's digest belongs to exactly one
persona's clip (checked when the cast is loaded), a decoded sample has that persona's size,
and audio carries that persona's RFC 6464 level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rtp.probe import ReceiveProbe, frame_digest
from rtp.synthetic import Clip, load_clip

# camera size, sine frequency (Hz), microphone level: one row per persona. p0 is the
# default clip (640x480, 440 Hz) with the default level (client.media.MIC_LEVEL).
LOOKS: tuple[tuple[tuple[int, int], int, int], ...] = (
    ((640, 480), 440, 42),
    ((480, 360), 660, 30),
    ((320, 240), 880, 55),
    ((352, 288), 550, 20),
    ((256, 192), 330, 35),
    ((416, 240), 770, 48),
    ((288, 224), 990, 26),
    ((384, 216), 1100, 38),
)
SCREEN_SIZE = (800, 600)
SCREEN_PATTERN = "testsrc2"
SOURCES = ("microphone", "camera", "screen")


@dataclass(frozen=True)
class Persona:
    """What one test person publishes, and how to recognise it at a receiver."""

    name: str
    camera: Clip  # its video is the camera, its audio the microphone
    screen: Clip | None
    level: int  # RFC 6464 level of the microphone

    def clip(self, source: str) -> Clip:
        if source != "screen":
            return self.camera
        assert self.screen is not None, "this cast has no screen clip"
        return self.screen

    def size(self, source: str) -> tuple[int, int]:
        clip = self.clip(source)
        return clip.width, clip.height

    @property
    def clips(self) -> dict[str, Clip]:
        """Per-source clips for `MediaPeer(clips=...)` (the camera clip is its `clip`)."""
        return {} if self.screen is None else {"screen": self.screen}


def _as_received(codec: str, frame: bytes) -> bytes:
    """A frame as a receiver's depayloader rebuilds it: RTP carries H.264 NAL units without
    start codes, and aiortc puts a 4-byte one before each (x264 writes some with 3)."""
    if codec != "H264":
        return frame
    units = [u for u in re.split(b"\x00\x00\x00?\x01", frame) if u]
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def _digests(clip: Clip, source: str) -> frozenset[bytes]:
    if source == "microphone":
        return frozenset(frame_digest(data) for data, _ in clip.audio)
    return frozenset(frame_digest(_as_received(clip.codec, data)) for data, _, _ in clip.video)


class Cast:
    """The personas of one codec, encoded once into `directory` (a few seconds, cold)."""

    def __init__(
        self, directory: Path, codec: str = "VP8", people: int = len(LOOKS), screen: bool = True
    ) -> None:
        self.codec = codec
        self.screen = (
            load_clip(directory, codec, size=SCREEN_SIZE, pattern=SCREEN_PATTERN)
            if screen
            else None
        )
        self.people: list[Persona] = []
        for i, (size, frequency, level) in enumerate(LOOKS[:people]):
            camera = load_clip(directory, codec, size=size, frequency=frequency)
            self.people.append(Persona(f"p{i}", camera, self.screen, level))
        # digest -> "p1/camera": whose media a received frame is
        self._owner: dict[bytes, str] = {}
        self._digests: dict[tuple[str, str], frozenset[bytes]] = {}
        for persona in self.people:
            for source in SOURCES if screen else SOURCES[:2]:
                digests = _digests(persona.clip(source), source)
                self._digests[persona.name, source] = digests
                owner = "screen" if source == "screen" else f"{persona.name}/{source}"
                for digest in digests:
                    previous = self._owner.setdefault(digest, owner)
                    if previous != owner:
                        raise AssertionError(f"{owner} and {previous} share a frame")

    def __getitem__(self, index: int) -> Persona:
        return self.people[index]

    def __len__(self) -> int:
        return len(self.people)

    def digests(self, persona: Persona, source: str) -> frozenset[bytes]:
        return self._digests[persona.name, source]

    def owners(self, digests: Iterable[bytes]) -> list[str]:
        """Whose media these frames are (`?` for frames of no known clip)."""
        return sorted({self._owner.get(d, "?") for d in digests})

    def problems(
        self,
        probe: ReceiveProbe | None,
        persona: Persona,
        source: str,
        since: float | None = None,
    ) -> list[str]:
        """Why `probe` does not carry `persona`'s `source` (frames since `since`, or all)."""
        what = f"{persona.name}/{source}"
        if probe is None:
            return [f"no slot for {what}"]
        digests = probe.digests if since is None else probe.digests_since(since)
        if not digests:
            return [f"no frames of {what} yet"]
        found: list[str] = []
        foreign = [d for d in digests if d not in self.digests(persona, source)]
        if foreign:
            found.append(
                f"{len(foreign)} of {len(digests)} frames on the {what} slot are not its clip:"
                f" they are {self.owners(foreign)}"
            )
        if source == "microphone":
            levels = set(probe.audio_levels if since is None else probe.levels_since(since))
            if levels != {persona.level}:
                found.append(f"levels {sorted(levels)} on the {what} slot, not {persona.level}")
        else:
            sample = probe.decode_sample()
            if sample is None:
                found.append(f"the {what} slot has nothing decodable yet")
            elif (sample.width, sample.height) != persona.size(source):
                found.append(
                    f"the {what} slot decodes at {sample.width}x{sample.height},"
                    f" not {persona.size(source)[0]}x{persona.size(source)[1]}"
                )
        return found

    def carries(
        self,
        probe: ReceiveProbe | None,
        persona: Persona,
        source: str,
        since: float | None = None,
    ) -> bool:
        return not self.problems(probe, persona, source, since)

    def check(
        self,
        probe: ReceiveProbe | None,
        persona: Persona,
        source: str,
        since: float | None = None,
        where: str = "",
    ) -> None:
        """Assert that `probe` carries `persona`'s `source` and nobody else's."""
        found = self.problems(probe, persona, source, since)
        assert not found, f"{where}: {'; '.join(found)}" if where else "; ".join(found)
