"""The cost of a pipe between two media servers: CPU per piped stream on each side, and the
latency the hop adds (`sfu.pipe`, docs/sfu.md "Pipes between workers").

Two parts, in one run:

* **per packet** (in this process, no network peers): the synthetic clip's VP8 and Opus
  packets through a real pipe on loopback. Origin: what `PipeOut.forward` adds per packet
  (datagram built and sent). Receiver: what B spends per packet from the socket to its
  publication (`recvfrom`, parsing, the `RtpPacket`, `Publication.on_rtp` with no
  subscriber: what any local publication costs is the same after that). Medians of
  repeats; µs per packet are turned into % of a core per stream with the clip's own rates.
* **a meeting over two workers**: servers A and B in processes of their own (both pinned to
  one CPU by default, the bots to the other, as the bots must not compete with the servers),
  driven by the aiortc bots of this process. N publishers join A; K subscribers join A and
  K join B. Windows alternate between the pipes off and on (every publication of A piped
  to B: 2N streams), so slow drift on a shared machine hits both alike:
    - `ingress`: B has no subscriber yet: the CPU each side spends on the pipes alone;
    - `fan-out`: K subscribers on B: B fans the piped streams out, and each camera frame's
      latency (from the publisher's send to the subscriber's reassembled frame, both in
      this process) is compared between A's direct subscribers and B's piped ones.
  Windows in which other processes used more than the quiet threshold are flagged and
  left out of the medians when undisturbed ones exist.

    .venv/bin/python -m bench.pipe [--publishers 4] [--subscribers 3] [--window 10] [--pairs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import pickle
import socket
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.codecs import get_encoder
from aiortc.rtp import RtpPacket

from client.loadtest import procstat
from client.loadtest.cli import default_clip_dir
from client.loadtest.stats import median, percentile
from client.media import MediaPeer
from rtp import aiortc_hooks, vp8
from rtp.codecs import packet_starts_keyframe
from rtp.framing import EncodedFrame
from rtp.probe import ReceiveProbe, frame_digest
from rtp.synthetic import Clip, ClipTrack, load_clip
from rtp.types import Kind, SlotAssignment, Source
from sfu import MediaServer, MediaSettings
from sfu.forwarding import Counters, Publication
from sfu.pipe import PipeEndpoint, media_datagram

from .machine import Machine

log = logging.getLogger("bench.pipe")
REPO = Path(__file__).resolve().parents[1]
LOOPBACK = ("127.0.0.1",)
ROOM = "bench"
SOURCES: tuple[tuple[Source, str, str], ...] = (
    ("microphone", "audio", "opus"),
    ("camera", "video", "VP8"),
)
BATCH = 200  # datagrams per timed batch (fits a default UDP receive buffer)


# ------------------------------------------------------------------------ per packet


def clip_packets(clip: Clip) -> tuple[list[RtpPacket], list[RtpPacket]]:
    """The clip's video as VP8 RTP packets (aiortc's packetizer) and its audio as Opus
    packets with an audio level, as a receiver tap hands them on."""
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    encoder = get_encoder(codec)
    video: list[RtpPacket] = []
    for data, pts, _ in clip.video:
        frame = av.Packet(data)
        frame.pts = pts
        frame.time_base = Fraction(1, 90000)
        payloads, timestamp = encoder.pack(frame)
        for i, payload in enumerate(payloads):
            video.append(
                RtpPacket(
                    96, int(i == len(payloads) - 1), len(video) & 0xFFFF, timestamp, 1111, payload
                )
            )
    audio: list[RtpPacket] = []
    for data, pts in clip.audio:
        packet = RtpPacket(111, 0, len(audio) & 0xFFFF, pts, 2222, data)
        packet.extensions.audio_level = (True, 42)
        audio.append(packet)
    return video, audio


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(4096)


def _origin_us(packets: list[RtpPacket], kind: Kind, repeats: int) -> list[float]:
    """µs `PipeOut.forward` adds per packet (datagram built, history kept, sendto)."""
    counters = Counters()
    endpoint = PipeEndpoint("127.0.0.1", 0, None, counters)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    source: Source = "camera" if kind == "video" else "microphone"
    publication = Publication("p", source, kind, lambda s: None, counters)
    out = endpoint.open_out(1, sink.getsockname(), publication, lambda p: None)
    ntp = aiortc_hooks.ntp_now()
    abs_time = aiortc_hooks.abs_send_time(ntp)
    args = [
        (
            p,
            kind == "video" and packet_starts_keyframe("VP8", p.payload),
            ntp,
            abs_time,
            0x80 | 42 if kind == "audio" else None,
            vp8.temporal(p.payload) if kind == "video" else vp8.NO_LAYERS,
        )
        for p in packets
    ]
    results = []
    try:
        for _ in range(repeats):
            spent = 0.0
            for start in range(0, len(args), BATCH):
                batch = args[start : start + BATCH]
                t0 = time.perf_counter()
                for a in batch:
                    out.forward(*a)
                spent += time.perf_counter() - t0
                _drain(sink)
            results.append(spent / len(args) * 1e6)
    finally:
        endpoint.close()
        sink.close()
    return results


def _receiver_us(packets: list[RtpPacket], kind: Kind, repeats: int) -> list[float]:
    """µs B spends per piped packet: recvfrom, parsing, RtpPacket, Publication.on_rtp."""
    counters = Counters()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    endpoint = PipeEndpoint("127.0.0.1", 0, None, counters)
    codec = "VP8" if kind == "video" else "opus"
    source: Source = "camera" if kind == "video" else "microphone"
    endpoint.open_in(
        7,
        sender.getsockname(),
        "p",
        source,
        kind,
        codec,
        "VP8",
        lambda p: None,
    )
    pt = 96 if kind == "video" else 111
    datagrams = [
        media_datagram(
            7,
            pt,
            p.marker,
            p.sequence_number,
            p.timestamp,
            p.ssrc,
            0x80 | 42 if kind == "audio" else None,
            p.payload,
        )
        for p in packets
    ]
    address = endpoint.address()
    results = []
    try:
        for _ in range(repeats):
            spent = 0.0
            for start in range(0, len(datagrams), BATCH):
                batch = datagrams[start : start + BATCH]
                for data in batch:
                    sender.sendto(data, address)
                target = counters.packets_piped_in + len(batch)
                t0 = time.perf_counter()
                while counters.packets_piped_in < target:
                    endpoint._readable()
                spent += time.perf_counter() - t0
            results.append(spent / len(datagrams) * 1e6)
    finally:
        endpoint.close()
        sender.close()
    return results


async def per_packet(clip: Clip, repeats: int, loops: int) -> dict[str, Any]:
    video, audio = clip_packets(clip)
    seconds = len(clip.video) / clip.fps
    rates = {"video": len(video) / seconds, "audio": len(audio) / seconds}
    figures: dict[str, Any] = {}
    kinds: tuple[tuple[Kind, list[RtpPacket]], ...] = (
        ("video", video * loops),
        ("audio", audio * loops),
    )
    for kind, packets in kinds:
        origin = _origin_us(packets, kind, repeats)
        receiver = _receiver_us(packets, kind, repeats)
        o, r = statistics.median(origin), statistics.median(receiver)
        figures[kind] = {
            "packets_per_s": round(rates[kind], 1),
            "packets_timed": len(packets),
            "origin_us_per_packet": round(o, 2),
            "receiver_us_per_packet": round(r, 2),
            "origin_us_runs": [round(v, 2) for v in origin],
            "receiver_us_runs": [round(v, 2) for v in receiver],
            # % of one core for one piped stream at the clip's packet rate
            "origin_percent_per_stream": round(o * rates[kind] / 1e4, 3),
            "receiver_percent_per_stream": round(r * rates[kind] / 1e4, 3),
        }
    return figures


# ------------------------------------------------------------------------ the workers


async def _write(writer: asyncio.StreamWriter, message: Any) -> None:
    data = pickle.dumps(message)
    writer.write(len(data).to_bytes(4, "big") + data)
    await writer.drain()


async def _read(reader: asyncio.StreamReader) -> Any:
    size = int.from_bytes(await reader.readexactly(4), "big")
    return pickle.loads(await reader.readexactly(size))


class _EventsProxy:
    """MediaEvents of one participant, sent to the bench process."""

    def __init__(self, writer: asyncio.StreamWriter, pid: str) -> None:
        self.writer, self.pid = writer, pid

    async def _send(self, name: str, *args: Any) -> None:
        await _write(self.writer, ("event", self.pid, name, args))

    async def renegotiate(
        self, audio_slots: int, video_slots: int, audio_total: int, video_total: int
    ) -> None:
        await self._send("renegotiate", audio_slots, video_slots, audio_total, video_total)

    async def slots_changed(self, slots: list[SlotAssignment]) -> None:
        await self._send("slots_changed", slots)

    async def connection_lost(self, reason: str) -> None:
        await self._send("connection_lost", reason)

    async def speakers_changed(self, dominant: str | None, recent: list[str]) -> None:
        pass  # the bench does not need them


async def worker_main(path: str, cpu: int | None) -> None:
    """A media server in its own process, driven over a Unix socket by the bench."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    server = MediaServer(MediaSettings(ice_host_addresses=LOOPBACK))
    finished = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def serve(
        writer: asyncio.StreamWriter, ident: int, method: str, args: tuple[Any, ...]
    ) -> None:
        try:
            if method == "join":
                await server.join(args[0], args[1], _EventsProxy(writer, args[1]))
                result: Any = None
            elif method == "cpu":
                result = time.process_time()
            elif method == "shutdown":
                await server.close()
                finished.set()
                result = None
            else:
                result = getattr(server, method)(*args)
                if asyncio.iscoroutine(result):
                    result = await result
            reply = (ident, True, result)
        except Exception as exc:
            reply = (ident, False, f"{type(exc).__name__}: {exc}")
        await _write(writer, reply)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                ident, method, args = await _read(reader)
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                finished.set()  # the bench went away, or this worker is shutting down
                return
            task = asyncio.ensure_future(serve(writer, ident, method, args))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    listener = await asyncio.start_unix_server(handle, path)
    async with listener:
        await finished.wait()
    await server.close()


class Worker:
    """The bench's side of one worker process: calls, and the events of its participants."""

    def __init__(self, name: str, cpu: int | None, directory: Path) -> None:
        self.name = name
        self.cpu = cpu
        self.path = str(directory / f"{name}.sock")
        self.sinks: dict[str, Callable[[str, tuple[Any, ...]], None]] = {}
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        command = [sys.executable, "-m", "bench.pipe", "--worker", self.path]
        if self.cpu is not None:
            command += ["--worker-cpu", str(self.cpu)]
        self.process = await asyncio.create_subprocess_exec(*command, cwd=REPO)
        for attempt in range(200):
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(self.path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if attempt == 199 or self.process.returncode is not None:
                    raise
                await asyncio.sleep(0.05)
        self._task = asyncio.ensure_future(self._receive())

    async def _receive(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = await _read(self._reader)
                if message[0] == "event":
                    _, pid, name, args = message
                    sink = self.sinks.get(pid)
                    if sink is not None:
                        sink(name, args)
                    continue
                ident, ok, result = message
                future = self._calls.pop(ident)
                if ok:
                    future.set_result(result)
                else:
                    future.set_exception(RuntimeError(f"{self.name}: {result}"))

    async def call(self, method: str, *args: Any) -> Any:
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[self._next] = future
        await _write(self._writer, (self._next, method, args))
        return await future

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call("shutdown"), 10)
        self._writer.close()
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._task.cancel()


# ------------------------------------------------------------------------ the bots


class SendLog:
    """When a publisher sent each camera frame (by digest), for the receivers' latency."""

    def __init__(self) -> None:
        self.sent: dict[bytes, deque[float]] = {}

    def add(self, digest: bytes, at: float) -> None:
        times = self.sent.get(digest)
        if times is None:
            times = self.sent[digest] = deque(maxlen=4)
        times.append(at)

    def latency(self, digest: bytes, arrived: float) -> float | None:
        """Arrival minus the latest send of that frame before it (None: not ours)."""
        before = [t for t in self.sent.get(digest, ()) if t <= arrived]
        return arrived - before[-1] if before else None


class TimedClipTrack(ClipTrack):
    def __init__(self, clip: Clip, kind: str, sent: SendLog) -> None:
        super().__init__(clip, kind)
        self.log = sent

    async def recv(self) -> av.Packet:
        packet = await super().recv()
        if self.kind == "video":
            self.log.add(frame_digest(bytes(packet)), time.monotonic())
        return packet


class LatencyProbe(ReceiveProbe):
    """A receive slot that notes each camera frame's latency from its publisher's send."""

    def __init__(self, bot: Bot, receiver: RTCRtpReceiver, mid: str, kind: str, codec: str) -> None:
        aiortc_hooks.skip_bandwidth_estimation(receiver)  # as the load bots do: cheaper
        super().__init__(receiver, kind, codec, mid=mid)
        self.bot = bot
        self.mid = mid
        self.latencies: list[tuple[float, float]] = []  # (arrival, seconds)

    def _on_frame(self, frame: EncodedFrame) -> None:
        counted = self.frames
        super()._on_frame(frame)
        if self.kind != "video" or self.frames == counted:
            return  # audio, or a frame the probe did not count (cut short)
        owner = self.bot.owners.get(self.mid)
        sent = self.bot.logs.get(owner) if owner else None
        if sent is not None:
            arrived, digest, _ = self.recent[-1]
            latency = sent.latency(digest, arrived)
            if latency is not None and latency < 2.0:
                self.latencies.append((arrived, latency))


class Bot:
    """One aiortc participant of the bench, connected to one worker."""

    def __init__(
        self,
        worker: Worker,
        pid: str,
        clip: Clip,
        logs: dict[str, SendLog],
        publish: bool,
        slots: tuple[int, int],
    ) -> None:
        self.worker = worker
        self.pid = pid
        self.logs = logs
        self.publish = publish
        self.slots = slots
        self.owners: dict[str, str] = {}  # mid -> publisher
        if publish:
            logs[pid] = SendLog()
        self.media = MediaPeer(
            clip,
            self._negotiate,
            ice_host_addresses=LOOPBACK,
            track_factory=lambda c, source: TimedClipTrack(
                c, "audio" if source == "microphone" else "video", logs[pid]
            ),
            probe_factory=lambda receiver, mid, kind, codec: LatencyProbe(
                self, receiver, mid, kind, codec
            ),
            answer_applied=lambda: self.worker.call("answer_applied", ROOM, self.pid),
        )
        worker.sinks[pid] = self._event

    async def _negotiate(self, sdp: str, published: Mapping[str, Source]) -> str:
        answer: str = await self.worker.call("negotiate", ROOM, self.pid, sdp, dict(published))
        return answer

    def _event(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "renegotiate":
            self.media.request_slots(args[0], args[1])
        elif name == "slots_changed":
            slots: list[SlotAssignment] = args[0]
            self.media.set_slots(slots)
            self.owners = {s.mid: s.participant_id for s in slots if s.participant_id}

    async def join(self) -> None:
        await self.worker.call("join", ROOM, self.pid)
        if self.publish:
            self.media.add_source("microphone")
            self.media.add_source("camera")
        self.media.add_slots(*self.slots)
        await self.media.offer()

    def cameras(self) -> int:
        """Camera slots that received frames in the last second."""
        now = time.monotonic()
        return sum(
            1
            for mid, probe in self.media.probes.items()
            if probe.kind == "video"
            and self.owners.get(mid)
            and (probe.last_frame_at or 0) > now - 1
        )

    def latencies_since(self, t0: float) -> list[float]:
        return [
            latency
            for probe in self.media.probes.values()
            if isinstance(probe, LatencyProbe)
            for arrived, latency in probe.latencies
            if arrived >= t0
        ]

    def frames_since(self, t0: float) -> int:
        return sum(
            probe.frames_since(t0) for probe in self.media.probes.values() if probe.kind == "video"
        )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.worker.call("leave", ROOM, self.pid)
        await self.media.close()


# ------------------------------------------------------------------------ the meeting


@dataclass(kw_only=True)
class Window:
    sweep: str
    piped: bool
    seconds: float
    a_cpu: float  # % of one core
    b_cpu: float
    bots_cpu: float
    others_cpu: float
    disturbed: bool
    packets_piped: int  # B's packets_piped_in in the window
    a_forwarded: int
    b_forwarded: int
    a_fps: float  # camera frames per second per direct subscriber
    b_fps: float
    latency_a: list[float] = field(default_factory=list, repr=False)
    latency_b: list[float] = field(default_factory=list, repr=False)

    def figures(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "piped": self.piped,
            "seconds": round(self.seconds, 2),
            "a_cpu_percent": round(self.a_cpu, 2),
            "b_cpu_percent": round(self.b_cpu, 2),
            "bots_cpu_percent": round(self.bots_cpu, 1),
            "others_cpu_percent": round(self.others_cpu, 1),
            "disturbed": self.disturbed,
            "packets_piped_per_s": round(self.packets_piped / self.seconds, 1),
            "a_fps_per_subscriber": round(self.a_fps, 1),
            "b_fps_per_subscriber": round(self.b_fps, 1),
        }


@dataclass(frozen=True)
class Options:
    publishers: int
    subscribers: int
    window: float
    pairs: int
    a_cpu: int | None
    b_cpu: int | None
    bots_cpu: int | None
    quiet_threshold: float
    quiet_wait: float
    repeats: int
    loops: int
    clip_dir: Path
    meeting: bool


class Meeting:
    def __init__(self, opts: Options, clip: Clip, a: Worker, b: Worker) -> None:
        self.opts, self.clip, self.a, self.b = opts, clip, a, b
        self.logs: dict[str, SendLog] = {}
        n, k = opts.publishers, opts.subscribers
        self.publishers = [Bot(a, f"pub{i}", clip, self.logs, True, (0, 0)) for i in range(n)]
        self.direct = [Bot(a, f"a-sub{i}", clip, self.logs, False, (3, n)) for i in range(k)]
        self.piped = [Bot(b, f"b-sub{i}", clip, self.logs, False, (3, n)) for i in range(k)]
        self.pipe_ids: list[int] = []
        self.next_pipe = 1
        self.machine = Machine(os.getpid())

    async def pipes_on(self) -> None:
        origin, destination = await self.a.call("pipe_address"), await self.b.call("pipe_address")
        for publisher in self.publishers:
            for source, kind, codec in SOURCES:
                pipe_id, self.next_pipe = self.next_pipe, self.next_pipe + 1
                await self.b.call(
                    "add_remote_publication",
                    ROOM,
                    publisher.pid,
                    source,
                    kind,
                    codec,
                    pipe_id,
                    origin,
                )
                await self.a.call("start_pipe", ROOM, publisher.pid, source, destination, pipe_id)
                self.pipe_ids.append(pipe_id)

    async def pipes_off(self) -> None:
        for pipe_id in self.pipe_ids:
            await self.a.call("stop_pipe", pipe_id)
        self.pipe_ids = []
        for publisher in self.publishers:
            for source, _, _ in SOURCES:
                await self.b.call("remove_remote_publication", ROOM, publisher.pid, source)

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        t0 = time.monotonic()
        while not predicate():
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)

    async def window(self, sweep: str, piped: bool) -> Window:
        a_stats0, b_stats0 = await self.a.call("stats"), await self.b.call("stats")
        before = self.machine.sample()
        a0, b0 = await self.a.call("cpu"), await self.b.call("cpu")
        bots0 = time.process_time()
        t0 = time.monotonic()
        await asyncio.sleep(self.opts.window)
        a1, b1 = await self.a.call("cpu"), await self.b.call("cpu")
        bots1 = time.process_time()
        seconds = time.monotonic() - t0
        after = self.machine.sample()
        a_stats1, b_stats1 = await self.a.call("stats"), await self.b.call("stats")
        others, _ = self.machine.others(before, after)
        b_subscribers = [bot for bot in self.piped if bot.media.pc.connectionState == "connected"]
        return Window(
            sweep=sweep,
            piped=piped,
            seconds=seconds,
            a_cpu=(a1 - a0) / seconds * 100,
            b_cpu=(b1 - b0) / seconds * 100,
            bots_cpu=(bots1 - bots0) / seconds * 100,
            others_cpu=others,
            disturbed=others > self.opts.quiet_threshold,
            packets_piped=b_stats1["packets_piped_in"] - b_stats0["packets_piped_in"],
            a_forwarded=a_stats1["packets_forwarded"] - a_stats0["packets_forwarded"],
            b_forwarded=b_stats1["packets_forwarded"] - b_stats0["packets_forwarded"],
            a_fps=statistics.mean(bot.frames_since(t0) for bot in self.direct) / seconds,
            b_fps=(
                statistics.mean(bot.frames_since(t0) for bot in b_subscribers) / seconds
                if b_subscribers
                else 0.0
            ),
            latency_a=[v for bot in self.direct for v in bot.latencies_since(t0)],
            latency_b=[v for bot in b_subscribers for v in bot.latencies_since(t0)],
        )

    async def sweep(self, name: str) -> list[Window]:
        windows = []
        waited = await self.machine.wait_quiet(self.opts.quiet_threshold, self.opts.quiet_wait)
        log.info("%s: machine quiet after %.0f s", name, waited)
        for pair in range(self.opts.pairs):
            for piped in (False, True):
                if piped:
                    await self.pipes_on()
                    if name == "fan-out":
                        await self.until(
                            lambda: all(
                                bot.cameras() == self.opts.publishers for bot in self.piped
                            ),
                            15,
                            "B's subscribers to receive every camera",
                        )
                else:
                    await self.pipes_off()
                await asyncio.sleep(2.0)  # settle: keyframes, slots, renegotiations
                window = await self.window(name, piped)
                windows.append(window)
                log.info(
                    "%s %d %s: A %.1f%%, B %.1f%%, bots %.0f%%, others %.0f%%%s; %.0f piped pps; "
                    "fps A %.1f B %.1f",
                    name,
                    pair + 1,
                    "on " if piped else "off",
                    window.a_cpu,
                    window.b_cpu,
                    window.bots_cpu,
                    window.others_cpu,
                    " (disturbed)" if window.disturbed else "",
                    window.packets_piped / window.seconds,
                    window.a_fps,
                    window.b_fps,
                )
        await self.pipes_off()
        return windows

    async def run(self) -> dict[str, Any]:
        for bot in (*self.publishers, *self.direct):
            await bot.join()
        await self.until(
            lambda: all(bot.cameras() == self.opts.publishers for bot in self.direct),
            30,
            "A's subscribers to receive every camera",
        )
        ingress = await self.sweep("ingress")
        for bot in self.piped:
            await bot.join()
        fan_out = await self.sweep("fan-out")
        return summarize(self.opts, ingress, fan_out)

    async def close(self) -> None:
        for bot in (*self.piped, *self.direct, *self.publishers):
            await bot.close()


def _calm(windows: list[Window]) -> list[Window]:
    calm = [w for w in windows if not w.disturbed]
    return calm or windows


def _delta(windows: list[Window], pick: Callable[[Window], float]) -> float | None:
    on = median(pick(w) for w in _calm([w for w in windows if w.piped]))
    off = median(pick(w) for w in _calm([w for w in windows if not w.piped]))
    return None if on is None or off is None else on - off


def summarize(opts: Options, ingress: list[Window], fan_out: list[Window]) -> dict[str, Any]:
    streams = 2 * opts.publishers
    result: dict[str, Any] = {"piped_streams": streams}
    for name, windows in (("ingress", ingress), ("fan_out", fan_out)):
        on = _calm([w for w in windows if w.piped])
        pps = median(w.packets_piped / w.seconds for w in on) or 0.0
        a_delta = _delta(windows, lambda w: w.a_cpu)
        b_delta = _delta(windows, lambda w: w.b_cpu)
        figures: dict[str, Any] = {
            "packets_piped_per_s": round(pps, 1),
            "a_cpu_off_percent": round(
                median(w.a_cpu for w in _calm([w for w in windows if not w.piped])) or 0, 2
            ),
            "a_cpu_on_percent": round(median(w.a_cpu for w in on) or 0, 2),
            "b_cpu_off_percent": round(
                median(w.b_cpu for w in _calm([w for w in windows if not w.piped])) or 0, 2
            ),
            "b_cpu_on_percent": round(median(w.b_cpu for w in on) or 0, 2),
            "a_added_percent": None if a_delta is None else round(a_delta, 2),
            "b_added_percent": None if b_delta is None else round(b_delta, 2),
            "a_added_percent_per_stream": None if a_delta is None else round(a_delta / streams, 3),
            "b_added_percent_per_stream": None if b_delta is None else round(b_delta / streams, 3),
            "a_added_us_per_piped_packet": None
            if a_delta is None or not pps
            else round(a_delta * 1e4 / pps, 1),
            "b_added_us_per_piped_packet": None
            if b_delta is None or not pps
            else round(b_delta * 1e4 / pps, 1),
            "windows": [w.figures() for w in windows],
            "disturbed_windows": sum(w.disturbed for w in windows),
        }
        if name == "fan_out":
            lat_a = [v * 1000 for w in on for v in w.latency_a]
            lat_b = [v * 1000 for w in on for v in w.latency_b]
            b_forwarded = median(w.b_forwarded / w.seconds for w in on) or 0.0
            figures.update(
                {
                    "b_forwarded_packets_per_s": round(b_forwarded, 1),
                    "a_fps_per_subscriber": round(median(w.a_fps for w in on) or 0, 1),
                    "b_fps_per_subscriber": round(median(w.b_fps for w in on) or 0, 1),
                    "latency_direct_ms": _latency(lat_a),
                    "latency_piped_ms": _latency(lat_b),
                    # per-window medians, B minus A, then their median: the hop's own delay
                    "added_latency_p50_ms": _rounded(
                        median(
                            statistics.median(w.latency_b) * 1000
                            - statistics.median(w.latency_a) * 1000
                            for w in on
                            if w.latency_a and w.latency_b
                        )
                    ),
                }
            )
        result[name] = figures
    ingress_fig, fan_fig = result["ingress"], result["fan_out"]
    if (
        fan_fig["b_added_percent"] is not None
        and ingress_fig["b_added_percent"] is not None
        and fan_fig["b_forwarded_packets_per_s"]
    ):
        fan_cost = fan_fig["b_added_percent"] - ingress_fig["b_added_percent"]
        result["b_fan_out_us_per_forwarded_packet"] = round(
            fan_cost * 1e4 / fan_fig["b_forwarded_packets_per_s"], 1
        )
    return result


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _latency(values: list[float]) -> dict[str, float | None]:
    return {
        "frames": len(values),
        "p50": _rounded(percentile(values, 50)),
        "p95": _rounded(percentile(values, 95)),
    }


# ------------------------------------------------------------------------ main


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.pipe", description=__doc__.split("\n\n")[0])
    p.add_argument("--publishers", type=int, default=4, help="N publishers on A (2N piped streams)")
    p.add_argument("--subscribers", type=int, default=3, help="K subscribers on A and K on B")
    p.add_argument("--window", type=float, default=10.0, help="seconds per measured window")
    p.add_argument("--pairs", type=int, default=3, help="off/on window pairs per sweep")
    p.add_argument("--a-cpu", type=int, default=0, help="CPU of worker A (-1: not pinned)")
    p.add_argument("--b-cpu", type=int, default=0, help="CPU of worker B (-1: not pinned)")
    p.add_argument("--bots-cpu", type=int, default=1, help="CPU of the bots (-1: not pinned)")
    p.add_argument(
        "--quiet-threshold", type=float, default=20.0, help="%% of a core others may use"
    )
    p.add_argument("--quiet-wait", type=float, default=60.0, help="longest wait for quiet (s)")
    p.add_argument("--repeats", type=int, default=5, help="per-packet runs (medians)")
    p.add_argument("--loops", type=int, default=10, help="clip loops per per-packet run")
    p.add_argument("--no-meeting", action="store_true", help="per-packet figures only")
    p.add_argument("--clip-dir", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--json-out", type=Path)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one worker
    p.add_argument("--worker-cpu", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _cpu(value: int) -> int | None:
    return None if value < 0 or procstat.core_count() < 2 else value


async def run(opts: Options) -> dict[str, Any]:
    if opts.bots_cpu is not None:
        os.sched_setaffinity(0, {opts.bots_cpu})
    clip = await asyncio.to_thread(load_clip, opts.clip_dir, "VP8")
    result: dict[str, Any] = {
        "settings": {
            "publishers": opts.publishers,
            "subscribers_per_worker": opts.subscribers,
            "window_s": opts.window,
            "pairs": opts.pairs,
            "a_cpu": opts.a_cpu,
            "b_cpu": opts.b_cpu,
            "bots_cpu": opts.bots_cpu,
            "clip": f"{clip.width}x{clip.height}@{clip.fps} {clip.codec} + Opus",
        },
        "load_average_at_start": procstat.load_average(),
    }
    log.info("per packet: %d repeats of %d clip loops", opts.repeats, opts.loops)
    result["per_packet"] = await per_packet(clip, opts.repeats, opts.loops)
    if not opts.meeting:
        return result
    with tempfile.TemporaryDirectory(prefix="bench-pipe-") as directory:
        a = Worker("a", opts.a_cpu, Path(directory))
        b = Worker("b", opts.b_cpu, Path(directory))
        await a.start()
        await b.start()
        meeting = Meeting(opts, clip, a, b)
        try:
            result["meeting"] = await meeting.run()
        finally:
            await meeting.close()
            await a.stop()
            await b.stop()
    return result


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"settings: {result['settings']}; load average at start {result['load_average_at_start']}"
    ]
    for kind, f in result["per_packet"].items():
        lines.append(
            f"per packet, {kind} ({f['packets_per_s']:.0f} packets/s per stream): origin "
            f"{f['origin_us_per_packet']:.2f} µs, receiver {f['receiver_us_per_packet']:.2f} µs "
            f"-> {f['origin_percent_per_stream']:.3f} % / {f['receiver_percent_per_stream']:.3f} % "
            f"of a core per stream"
        )
    meeting = result.get("meeting")
    if meeting:
        for name in ("ingress", "fan_out"):
            f = meeting[name]
            sides = [
                f"{side.upper()} {f[f'{side}_cpu_off_percent']:.1f} -> "
                f"{f[f'{side}_cpu_on_percent']:.1f} % (+{f[f'{side}_added_percent_per_stream']} % "
                f"per stream, {f[f'{side}_added_us_per_piped_packet']} µs per packet)"
                for side in ("a", "b")
            ]
            lines.append(
                f"{name}: {meeting['piped_streams']} piped streams, "
                f"{f['packets_piped_per_s']:.0f} packets/s; {'; '.join(sides)}; "
                f"{f['disturbed_windows']} disturbed window(s)"
            )
        f = meeting["fan_out"]
        lines.append(
            f"fan-out: camera fps per subscriber A {f['a_fps_per_subscriber']} B "
            f"{f['b_fps_per_subscriber']}; latency direct p50 {f['latency_direct_ms']['p50']} "
            f"p95 {f['latency_direct_ms']['p95']} ms, piped p50 {f['latency_piped_ms']['p50']} p95 "
            f"{f['latency_piped_ms']['p95']} ms; added (median of per-window p50 differences) "
            f"{f['added_latency_p50_ms']} ms; B's fan-out "
            f"{meeting.get('b_fan_out_us_per_forwarded_packet')} µs per forwarded packet"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = parse(argv)
    if args.worker:
        logging.basicConfig(level=logging.WARNING)
        asyncio.run(worker_main(args.worker, args.worker_cpu))
        return None
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log.setLevel(logging.INFO)
    opts = Options(
        publishers=args.publishers,
        subscribers=args.subscribers,
        window=args.window,
        pairs=max(1, args.pairs),
        a_cpu=_cpu(args.a_cpu),
        b_cpu=_cpu(args.b_cpu),
        bots_cpu=_cpu(args.bots_cpu),
        quiet_threshold=args.quiet_threshold,
        quiet_wait=args.quiet_wait,
        repeats=max(1, args.repeats),
        loops=max(1, args.loops),
        clip_dir=args.clip_dir or default_clip_dir(),
        meeting=not args.no_meeting,
    )
    result = asyncio.run(run(opts))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return result


if __name__ == "__main__":
    main()
