"""Turn the workers' raw window and final events into the load test report (JSON and text).

Every figure is defined in docs/loadtest.md. Rates are over the measured window; a stream
is one publisher's source as received by one subscriber.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rtp.synthetic import AUDIO_CLOCK, AUDIO_FRAME, FPS

from .runner import Joined
from .stats import Histogram, median

SENT_VIDEO_FPS = float(FPS)
SENT_AUDIO_PPS = AUDIO_CLOCK / AUDIO_FRAME
PUBLISHED = (("camera", "video"), ("microphone", "audio"))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _loss(packets: int, expected: int) -> float | None:
    return _r(max(0.0, 1 - packets / expected), 4) if expected > 0 else None


def build_report(
    windows: Sequence[dict[str, Any]],
    joined: Iterable[Joined],
    finals: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One measured window (one event per worker) -> report dictionary (the `--json` shape)."""
    people = {j.participant_id: j for j in joined if j.participant_id and j.error is None}
    names = {pid: f"bot-{j.bot}" for pid, j in people.items()}
    seconds_of: dict[str, float] = {}
    sent: dict[str, dict[str, Any]] = {}
    for window in windows:
        for bot in window["bots"]:
            seconds_of[bot["participant_id"]] = window["seconds"]
            sent[bot["participant_id"]] = bot
    records = {
        (s["subscriber"], s["publisher"], s["source"]): s for w in windows for s in w["streams"]
    }
    first_frames = {
        (f["subscriber"], f["publisher"], f["source"]): f["first_frame_at"]
        for final in finals
        for f in final["first_frames"]
    }

    streams: list[dict[str, Any]] = []
    for sub in people:
        for pub in people:
            if pub == sub:
                continue
            for source, kind in PUBLISHED:
                streams.append(
                    _stream_row(
                        sub,
                        pub,
                        source,
                        kind,
                        records.get((sub, pub, source)),
                        seconds_of.get(sub, 0.0),
                        sent.get(pub),
                        seconds_of.get(pub, 0.0),
                        first_frames.get((sub, pub, source)),
                        people,
                        names,
                    )
                )

    latency, send_lag, loop_lag = Histogram(), Histogram(), Histogram()
    for window in windows:
        latency.merge(Histogram.from_json(window["latency"]))
        send_lag.merge(Histogram.from_json(window["send_lag"]))
        loop_lag.merge(Histogram.from_json(window["loop_lag"]))
    seconds = max((w["seconds"] for w in windows), default=0.0)
    cpu = [
        {"pid": w["pid"], "percent": _r(w["cpu_seconds"] / w["seconds"] * 100, 1)} for w in windows
    ]
    packets = sum(s["packets"] for s in streams)  # bot-to-bot streams only
    video = [s for s in streams if s["kind"] == "video"]
    audio = [s for s in streams if s["kind"] == "audio"]
    first = [s["join_to_first_frame_s"] for s in video if s["join_to_first_frame_s"] is not None]
    return {
        "window_s": _r(seconds, 2),
        "window_started_at": min((w["started_at"] for w in windows), default=None),
        "bots": len(people),
        "bot_processes": len(windows),
        "participants": [
            {
                "bot": f"bot-{j.bot}",
                "participant_id": j.participant_id,
                "process": j.process,
                "join_s": _r(j.joined_at - j.join_started_at)
                if j.joined_at and j.join_started_at
                else None,
                "error": j.error,
            }
            for j in sorted(joined, key=lambda j: j.bot)
        ],
        "sent": {
            "video_fps": _r(_mean(_sent_rate(b, "video", seconds_of[p]) for p, b in sent.items())),
            "audio_pps": _r(_mean(_sent_rate(b, "audio", seconds_of[p]) for p, b in sent.items())),
            "send_lag_ms": send_lag.summary(),
        },
        "totals": {
            "video": _kind_totals(video),
            "audio": _kind_totals(audio),
            "latency_ms": latency.summary(),
            "join_to_first_frame_s": {
                "median": _r(median(first)),
                "max": _r(max(first, default=None)),
                "missing": len(video) - len(first),
            },
            "received_packets": packets,
            "received_packets_per_s": _r(_ratio(packets, seconds), 1),
            "forwarded_streams": len(video),
        },
        "bots_cpu": {
            "percent_of_one_core": _r(sum(w["cpu_seconds"] for w in windows) / seconds * 100, 1)
            if seconds
            else None,
            "processes": cpu,
            "event_loop_lag_ms": loop_lag.summary(),
        },
        "streams": streams,
        "decoded_sample": [
            {**d, **{k: names.get(d[k], d[k]) for k in ("subscriber", "publisher") if k in d}}
            for final in finals
            for d in final.get("decoded", [])
        ],
    }


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _sent_rate(bot: dict[str, Any], kind: str, seconds: float) -> float | None:
    count = bot["video_frames_sent"] if kind == "video" else bot["audio_packets_sent"]
    return _ratio(count, seconds)


def _stream_row(
    sub: str,
    pub: str,
    source: str,
    kind: str,
    record: dict[str, Any] | None,
    seconds: float,
    publisher: dict[str, Any] | None,
    publisher_seconds: float,
    first_frame_at: float | None,
    people: dict[str, Joined],
    names: dict[str, str],
) -> dict[str, Any]:
    record = record or {
        "frames": 0,
        "packets": 0,
        "expected_packets": 0,
        "identified": 0,
        "discontinuities": 0,
        "keyframes": 0,
        "bytes": 0,
        "latency_ms": None,
    }
    rate = _ratio(record["frames"], seconds) or 0.0
    sent_rate = _sent_rate(publisher, kind, publisher_seconds) if publisher else None
    joins = [people[sub].join_started_at, people[pub].join_started_at]
    since = max((j for j in joins if j is not None), default=None)
    row: dict[str, Any] = {
        "subscriber": names[sub],
        "publisher": names[pub],
        "source": source,
        "kind": kind,
        "rate": _r(rate, 2),
        "sent_rate": _r(sent_rate, 2),
        "ratio": _r(_ratio(rate, sent_rate or 0.0)),
        "loss": _loss(record["packets"], record["expected_packets"]),
        "packets": record["packets"],
        "expected_packets": record["expected_packets"],
        "bytes": record["bytes"],
        "join_to_first_frame_s": _r(first_frame_at - since)
        if first_frame_at is not None and since is not None
        else None,
    }
    if kind == "video":
        row["keyframes"] = record["keyframes"]
        row["discontinuities"] = record["discontinuities"]
        row["identical_fraction"] = _r(_ratio(record["identified"], record["frames"]))
        row["latency_ms"] = record["latency_ms"]
    return row


def _kind_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["rate"] for r in rows]
    ratios = [r["ratio"] if r["ratio"] is not None else 0.0 for r in rows]
    packets = sum(r["packets"] for r in rows)
    expected = sum(r["expected_packets"] for r in rows)
    totals: dict[str, Any] = {
        "streams": len(rows),
        "receiving": sum(1 for r in rows if r["rate"] > 0),
        "rate_mean": _r(_mean(rates), 2),
        "rate_min": _r(min(rates, default=None), 2),
        "ratio_mean": _r(_mean(ratios)),
        "ratio_min": _r(min(ratios, default=None)),
        "loss": _loss(packets, expected),
    }
    if rows and rows[0]["kind"] == "video":
        frames = sum(r["rate"] for r in rows)
        identical = sum(r["rate"] * (r["identical_fraction"] or 0.0) for r in rows)
        totals["identical_fraction"] = _r(_ratio(identical, frames))
        totals["discontinuities"] = sum(r["discontinuities"] for r in rows)
    return totals


# ------------------------------------------------------------------------------ text


def _fmt(value: float | None, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def format_report(report: dict[str, Any], *, streams: bool = True) -> str:
    totals, sent = report["totals"], report["sent"]
    video, audio, lat = totals["video"], totals["audio"], totals["latency_ms"]
    first, cpu = totals["join_to_first_frame_s"], report["bots_cpu"]
    lines = [
        f"{report['bots']} bots in {report['bot_processes']} process(es), "
        f"measured over {report['window_s']:.1f} s",
        f"sent per bot:      video {_fmt(sent['video_fps'])} fps, audio "
        f"{_fmt(sent['audio_pps'])} pps (send lag p95 {_fmt(sent['send_lag_ms']['p95'])} ms)",
        f"video received:    {video['receiving']}/{video['streams']} streams, "
        f"{_fmt(video['rate_mean'])} fps mean, {_fmt(video['rate_min'])} min "
        f"({_pct(video['ratio_min'])} of sent at worst), loss {_pct(video['loss'])}, "
        f"identical to the clip {_pct(video.get('identical_fraction'))}",
        f"audio received:    {audio['receiving']}/{audio['streams']} streams, "
        f"{_fmt(audio['rate_mean'])} pps mean, {_fmt(audio['rate_min'])} min, "
        f"loss {_pct(audio['loss'])}",
        f"latency (video):   p50 {_fmt(lat['p50'])} ms, p95 {_fmt(lat['p95'])} ms, "
        f"max {_fmt(lat['max'])} ms ({lat['count']} frames)",
        f"join->first frame: median {_fmt(first['median'], '.2f')} s, "
        f"max {_fmt(first['max'], '.2f')} s, missing {first['missing']}",
        f"bots CPU:          {_fmt(cpu['percent_of_one_core'])}% of one core "
        f"(event loop lag p95 {_fmt(cpu['event_loop_lag_ms']['p95'])} ms), "
        f"{_fmt(totals['received_packets_per_s'], '.0f')} packets/s received",
    ]
    for sample in report["decoded_sample"]:
        if "error" in sample:
            lines.append(f"decoded sample:    failed: {sample['error']}")
        else:
            lines.append(
                f"decoded sample:    {sample['frames']} frames {sample['width']}x"
                f"{sample['height']} from {sample['publisher']}"
            )
    if streams:
        lines += ["", _stream_table(report["streams"])]
    return "\n".join(lines)


def _stream_table(rows: list[dict[str, Any]]) -> str:
    pairs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        pairs.setdefault((row["subscriber"], row["publisher"]), {})[row["kind"]] = row
    header = (
        f"{'subscriber':<10} {'publisher':<10} {'video fps':>10} {'loss':>6} {'lat p50':>8} "
        f"{'lat p95':>8} {'first':>6} {'audio pps':>10} {'loss':>6}"
    )
    out = [header]
    for (sub, pub), kinds in pairs.items():
        v, a = kinds.get("video", {}), kinds.get("audio", {})
        lat = v.get("latency_ms") or {}
        out.append(
            f"{sub:<10} {pub:<10} {_fmt(v.get('rate')):>10} {_pct(v.get('loss')):>6} "
            f"{_fmt(lat.get('p50')):>8} {_fmt(lat.get('p95')):>8} "
            f"{_fmt(v.get('join_to_first_frame_s'), '.2f'):>6} {_fmt(a.get('rate')):>10} "
            f"{_pct(a.get('loss')):>6}"
        )
    return "\n".join(out)
