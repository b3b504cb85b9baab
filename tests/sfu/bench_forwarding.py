"""Micro-benchmark of the server's own forwarding work per packet (not run by pytest).

Measures tap -> frame reassembly -> fan-out -> SlotTrack.recv() -> codec pack() for the
synthetic VP8 clip, i.e. everything the SFU adds on top of aiortc's SRTP/RTP/UDP path.
Usage: .venv/bin/python -m tests.sfu.bench_forwarding [subscribers]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from fractions import Fraction

import av
from aiortc.codecs import depayload, get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from rtp.codecs import vp8_is_keyframe
from rtp.framing import VideoFramer
from rtp.synthetic import Clip, load_clip
from sfu.forwarding import Counters, Publication, SlotTrack

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)


def rtp_packets(clip: Clip, loops: int) -> list[RtpPacket]:
    encoder = get_encoder(VP8)
    packets, seq = [], 0
    for loop in range(loops):
        for data, pts, _ in clip.video:
            frame = av.Packet(data)
            frame.pts = pts + loop * clip.video_period
            frame.time_base = Fraction(1, 90000)
            payloads, ts = encoder.pack(frame)
            for i, payload in enumerate(payloads):
                p = RtpPacket(payload_type=97, sequence_number=seq & 0xFFFF, timestamp=ts)
                p.ssrc, p.marker, p.payload = 1234, int(i == len(payloads) - 1), payload
                p._data = depayload(VP8, payload)  # what aiortc's receiver hands the tap
                packets.append(p)
                seq += 1
    return packets


async def main(subscribers: int) -> None:
    clip = load_clip(tempfile.gettempdir(), "VP8")
    packets = rtp_packets(clip, 10)
    counters = Counters()
    pub = Publication("p", "camera", "video", None, counters)  # type: ignore[arg-type]
    framer = VideoFramer("VP8", pub.on_frame, vp8_is_keyframe)
    outs = [SlotTrack("video", str(i), counters) for i in range(subscribers)]
    for out in outs:
        out.set_source(pub)
    encoders = [get_encoder(VP8) for _ in outs]
    t0 = time.perf_counter()
    frames = 0
    for packet in packets:
        framer.add(packet)
        for out, enc in zip(outs, encoders, strict=True):
            while out._queue:
                enc.pack(await out.recv())
                frames += 1
    elapsed = time.perf_counter() - t0
    per_packet = elapsed / len(packets) * 1e6
    print(
        f"{len(packets)} packets, {frames} frames to {subscribers} subscribers: "
        f"{per_packet:.1f} us per incoming packet, "
        f"{per_packet / subscribers:.1f} us per forwarded packet"
    )
    pub.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2))
