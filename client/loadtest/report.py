"""Turn the workers' raw window and final events into the load test report (JSON and text).

Every figure is defined in docs/loadtest.md. Rates are over the measured window; a stream
is one publisher's source as received by one subscriber. When the server selects what each
bot receives (a `receive` message with `last_n`, or a server that forwards only the M
loudest microphones), a stream's rate is over the time it was **assigned** to one of the
subscriber's slots (`tracks` events), and the `selected` figures say, per bot, how many
streams it had and what frame rate they delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .runner import Joined
from .stats import Histogram, median, percentile

PUBLISHED = (("camera", "video"), ("microphone", "audio"))
MIN_ASSIGNED_S = 1.0  # streams assigned for less than this are left out of rate minima


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
    *,
    last_n: int | None = None,
    turns: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One measured window (one event per worker) -> report dictionary (the `--json` shape).

    `last_n`: what the bots asked for in `receive` (None: they sent none); `turns`: the
    speaking turns (`speaking.Speaking.records`) the speaker-switch figures cover (all of
    them: the caller picks; `tertulia loadtest` counts the warm-up's turns too)."""
    joined = list(joined)
    people = {j.participant_id: j for j in joined if j.participant_id and j.error is None}
    names = {pid: f"bot-{j.bot}" for pid, j in people.items()}
    refused = sorted({j.receive_error for j in people.values() if j.receive_error})
    limits = [j.audio_streams for j in people.values() if j.audio_streams is not None]
    audio_limit = limits[0] if limits else None
    honoured_last_n = last_n if last_n is not None and not refused else None
    selecting = honoured_last_n is not None or audio_limit is not None
    k = len(people)
    if honoured_last_n is not None:
        expected_video: int | None = min(honoured_last_n, max(0, k - 1))
    elif not selecting:
        expected_video = max(0, k - 1)
    else:
        expected_video = None  # the server's default last_n, which welcome does not tell
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
                record = records.get((sub, pub, source))
                if selecting and not (record and (record["assigned_s"] or record["packets"])):
                    continue  # not selected during the window: not a stream of this bot
                streams.append(
                    _stream_row(
                        sub,
                        pub,
                        source,
                        kind,
                        record,
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
    first_turn = min((t["at"] for t in turns if t.get("bot")), default=None)
    first, missing = _join_to_first(finals, people, first_turn if selecting else None)
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
            "video": _kind_totals(video, selecting),
            "audio": _kind_totals(audio, selecting),
            "latency_ms": latency.summary(),
            "join_to_first_frame_s": {
                "median": _r(median(first)),
                "max": _r(max(first, default=None)),
                "missing": missing,
            },
            "received_packets": packets,
            "received_packets_per_s": _r(_ratio(packets, seconds), 1),
            "forwarded_streams": _r(
                _ratio(sum(s["assigned_s"] for s in video), seconds) if selecting else len(video),
                1,
            ),
        },
        "receive": {
            "last_n": last_n,
            "visible": None,
            "refused": refused,  # error codes the server answered `receive` with
            "audio_streams": audio_limit,
            "selecting": selecting,
        },
        "selected": _selected(streams, people, names, sent, seconds_of, windows, expected_video),
        "speaking": switch_figures(turns, finals, (), names),
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


def _join_to_first(
    finals: Sequence[dict[str, Any]], people: dict[str, Joined], before: float | None
) -> tuple[list[float], int]:
    """Join -> first frame of every bot-to-bot video stream, seconds, and how many are
    missing. With `before` (a selecting server: the first speaking turn), only streams whose
    first frame came before it count (the others started with a speaker switch, measured
    there), and `missing` counts bots that got no video before it."""
    firsts: dict[tuple[str, str], float] = {}
    for final in finals:
        for f in final["first_frames"]:
            key = (f["subscriber"], f["publisher"])
            at = f["first_frame_at"]
            if f["kind"] != "video" or at is None or key[0] not in people or key[1] not in people:
                continue
            if key[0] == key[1] or (before is not None and at >= before):
                continue
            firsts[key] = min(at, firsts.get(key, at))
    values = []
    for (sub, pub), at in firsts.items():
        joins = [people[sub].join_started_at, people[pub].join_started_at]
        since = max((j for j in joins if j is not None), default=None)
        if since is not None:
            values.append(at - since)
    if before is None:
        missing = len(people) * (len(people) - 1) - len(firsts)
    else:
        missing = sum(1 for pid in people if not any(sub == pid for sub, _ in firsts))
    return values, missing


def _selected(
    streams: list[dict[str, Any]],
    people: dict[str, Joined],
    names: dict[str, str],
    sent: dict[str, dict[str, Any]],
    seconds_of: dict[str, float],
    windows: Sequence[dict[str, Any]],
    expected_video: int | None,
) -> dict[str, Any]:
    """Per bot, over the streams it actually selected (had on a slot) during the window:
    how many at once on average, and the frame rate they delivered per assigned second."""
    by_name = {names[pid]: pid for pid in people}
    window_bots = {b["participant_id"]: b for w in windows for b in w["bots"]}
    rows: list[dict[str, Any]] = []
    for pid in people:
        name = names[pid]
        seconds = seconds_of.get(pid, 0.0)
        row: dict[str, Any] = {"bot": name}
        for kind in ("video", "audio"):
            mine = [s for s in streams if s["subscriber"] == name and s["kind"] == kind]
            assigned = sum(s["assigned_s"] for s in mine)
            frames = sum(s["frames"] for s in mine)
            due = 0.0  # frames the publishers sent while assigned to this bot
            for s in mine:
                publisher = sent.get(by_name.get(s["publisher"], ""))
                pub_seconds = seconds_of.get(by_name.get(s["publisher"], ""), 0.0)
                rate = _sent_rate(publisher, kind, pub_seconds) if publisher else None
                due += s["assigned_s"] * (rate or 0.0)
            unit = "fps" if kind == "video" else "pps"
            row[f"{kind}_streams"] = _r(_ratio(assigned, seconds), 2)
            row[f"{kind}_{unit}"] = _r(_ratio(frames, assigned), 2)
            row[f"{kind}_ratio"] = _r(_ratio(frames, due))
        extra = window_bots.get(pid, {})
        row["video_busy_max"] = extra.get("video_busy_max")
        row["remaps"] = extra.get("remaps")
        row["keyframes_answered"] = extra.get("keyframes_answered")
        rows.append(row)

    def spread(key: str, digits: int = 2) -> dict[str, float | None]:
        values = [r[key] for r in rows if r[key] is not None]
        return {
            "mean": _r(_mean(values), digits),
            "min": _r(min(values, default=None), digits),
            "max": _r(max(values, default=None), digits),
        }

    seconds = max(seconds_of.values(), default=0.0)
    remaps = sum(r["remaps"] or 0 for r in rows)
    return {
        "expected_video_per_bot": expected_video,
        "video_streams_per_bot": spread("video_streams"),
        "video_busy_max": max((r["video_busy_max"] or 0 for r in rows), default=None),
        "video_fps": spread("video_fps"),
        "video_ratio": spread("video_ratio", 3),
        "audio_streams_per_bot": spread("audio_streams"),
        "audio_pps": spread("audio_pps"),
        "audio_ratio": spread("audio_ratio", 3),
        "remaps_per_bot_per_s": _r(_ratio(remaps, seconds * len(rows)), 3),
        "bots": rows,
    }


def _seconds(values: Iterable[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": _r(percentile(ordered, 50)),
        "p95": _r(percentile(ordered, 95)),
        "max": _r(ordered[-1] if ordered else None),
    }


def switch_figures(
    turns: Sequence[Mapping[str, Any]],
    finals: Sequence[dict[str, Any]],
    spans: Sequence[tuple[float, float]] = (),
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Speaker-switch latency over the turns that started inside `spans` (every turn when
    empty). Per turn and subscriber: from the moment the speaker's level rose (its bot
    process records it; the scheduled time if unknown) to the first frame of the speaker's
    video at that subscriber, on any slot. Per turn: until every other bot had one."""
    names = names or {}
    raised = {r["turn"]: r["raised_at"] for f in finals for r in f.get("raised", [])}
    watches: dict[int, list[dict[str, Any]]] = {}
    for final in finals:
        for record in final.get("switches", []):
            watches.setdefault(record["turn"], []).append(record)
    per_turn: list[float] = []
    per_sub: list[float] = []
    remapped: list[float] = []
    active: list[float] = []
    remap: list[float] = []
    already = missed_turns = missed_subs = 0
    rows = []
    for turn in turns:
        if not turn.get("participant_id"):
            continue
        at = turn["at"]
        if spans and not any(start <= at < end for start, end in spans):
            continue
        base = raised.get(turn["turn"], at)
        subs = watches.get(turn["turn"], [])
        latencies = []
        for w in subs:
            if w["first_frame_at"] is None:
                missed_subs += 1
                continue
            latency = max(0.0, w["first_frame_at"] - base)
            latencies.append(latency)
            per_sub.append(latency)
            if w["already"]:
                already += 1
            else:
                remapped.append(latency)
            if w["active_speaker_at"] is not None:
                active.append(max(0.0, w["active_speaker_at"] - base))
            if w["remap_at"] is not None and not w["already"]:
                remap.append(max(0.0, w["remap_at"] - base))
        complete = bool(subs) and len(latencies) == len(subs)
        if complete:
            per_turn.append(max(latencies))
        else:
            missed_turns += 1
        rows.append(
            {
                "turn": turn["turn"],
                "speaker": turn.get("bot") or names.get(turn["participant_id"]),
                "at": at,
                "raise_lag_ms": _r((base - at) * 1000, 1) if turn["turn"] in raised else None,
                "subscribers": len(subs),
                "already_receiving": sum(1 for w in subs if w["already"]),
                "switch_s": _r(max(latencies)) if complete else None,
            }
        )
    return {
        "turns": len(rows),
        "missed_turns": missed_turns,  # some subscriber never got the speaker's video
        "missed_subscribers": missed_subs,
        "already_receiving": already,  # (turn, subscriber) pairs: no switch was needed
        "switch_s": _seconds(per_turn),  # until every other bot received the speaker
        "subscriber_s": _seconds(per_sub),  # per (turn, subscriber)
        "remapped_subscriber_s": _seconds(remapped),  # those that needed a slot remap
        "active_speaker_s": _seconds(active),  # until the `active-speaker` event arrived
        "remap_s": _seconds(remap),  # until the `tracks` event gave the speaker a slot
        "per_turn": rows,
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
        "assigned_s": 0.0,
        "latency_ms": None,
    }
    assigned = min(record.get("assigned_s", seconds), seconds)
    # per second on a slot; a stream counted before its `tracks` event: per window second
    rate = _ratio(record["frames"], assigned if assigned > 0 else seconds) or 0.0
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
        "assigned_s": _r(assigned, 2),
        "frames": record["frames"],
        "first_frame_at": first_frame_at,
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


def _kind_totals(rows: list[dict[str, Any]], selecting: bool) -> dict[str, Any]:
    rates = [r["rate"] for r in rows]
    ratios = [r["ratio"] if r["ratio"] is not None else 0.0 for r in rows]
    # minima over streams that were on a slot long enough to have a rate (all of them
    # when every bot receives everyone for the whole window)
    settled = [r for r in rows if r["assigned_s"] >= MIN_ASSIGNED_S or not selecting] or rows
    settled_rates = [r["rate"] for r in settled]
    settled_ratios = [r["ratio"] if r["ratio"] is not None else 0.0 for r in settled]
    packets = sum(r["packets"] for r in rows)
    expected = sum(r["expected_packets"] for r in rows)
    totals: dict[str, Any] = {
        "streams": len(rows),
        "receiving": sum(1 for r in rows if r["rate"] > 0),
        "silent_settled": sum(1 for r in settled if r["rate"] == 0),
        "rate_mean": _r(_mean(rates), 2),
        "rate_min": _r(min(settled_rates, default=None), 2),
        "ratio_mean": _r(_mean(ratios)),
        "ratio_min": _r(min(settled_ratios, default=None)),
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
    lines += _selection_lines(report)
    for sample in report["decoded_sample"]:
        if "error" in sample:
            lines.append(f"decoded sample:    failed: {sample['error']}")
        else:
            lines.append(
                f"decoded sample:    {sample['frames']} frames {sample['width']}x"
                f"{sample['height']} from {sample['publisher']}"
            )
    if streams:
        lines += ["", _stream_table(report["streams"], report["receive"]["selecting"])]
    return "\n".join(lines)


def _spread(figure: dict[str, Any], spec: str = ".1f") -> str:
    return f"mean {_fmt(figure['mean'], spec)}, min {_fmt(figure['min'], spec)}"


def _latency(figure: dict[str, Any]) -> str:
    return (
        f"p50 {_fmt(figure['p50'], '.3f')} s, p95 {_fmt(figure['p95'], '.3f')} s, "
        f"max {_fmt(figure['max'], '.3f')} s ({figure['count']})"
    )


def _selection_lines(report: dict[str, Any]) -> list[str]:
    receive, selected, speaking = report["receive"], report["selected"], report["speaking"]
    lines = []
    if receive["last_n"] is not None or receive["selecting"]:
        asked = (
            "no receive message"
            if receive["last_n"] is None
            else (f"last_n {receive['last_n']}, visible null")
        )
        refused = (
            f", REFUSED by the server: {', '.join(receive['refused'])}"
            if receive["refused"]
            else ""
        )
        audio = receive["audio_streams"]
        lines.append(
            f"receive policy:    {asked}{refused}; server forwards "
            + (f"the {audio} loudest microphones" if audio is not None else "every microphone")
        )
        expected = selected["expected_video_per_bot"]
        lines.append(
            f"selected video:    {_spread(selected['video_streams_per_bot'])} streams per bot"
            + (f" (expected {expected})" if expected is not None else "")
            + f", at most {selected['video_busy_max']} at once; per selected stream "
            f"{_spread(selected['video_fps'])} fps across bots "
            f"(worst bot {_pct(selected['video_ratio']['min'])} of sent)"
        )
        lines.append(
            f"selected audio:    {_spread(selected['audio_streams_per_bot'])} streams per bot, "
            f"{_spread(selected['audio_pps'])} pps per selected stream; "
            f"{_fmt(selected['remaps_per_bot_per_s'], '.2f')} slot remaps per bot per s"
        )
    if speaking["turns"]:
        lines.append(
            f"speaker switches:  {speaking['turns']} turns, until every other bot had the "
            f"speaker's video: {_latency(speaking['switch_s'])}; "
            f"missed {speaking['missed_turns']}"
        )
        lines.append(
            f"  per subscriber:  {_latency(speaking['subscriber_s'])}; needing a remap "
            f"{_latency(speaking['remapped_subscriber_s'])}; already receiving "
            f"{speaking['already_receiving']}"
        )
        lines.append(
            f"  active-speaker:  {_latency(speaking['active_speaker_s'])}; "
            f"slot remap {_latency(speaking['remap_s'])}"
        )
    return lines


def _stream_table(rows: list[dict[str, Any]], selecting: bool = False) -> str:
    pairs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        pairs.setdefault((row["subscriber"], row["publisher"]), {})[row["kind"]] = row
    header = (
        f"{'subscriber':<10} {'publisher':<10} {'video fps':>10} {'loss':>6} {'lat p50':>8} "
        f"{'lat p95':>8} {'first':>6} {'audio pps':>10} {'loss':>6}"
    )
    if selecting:
        header += f" {'video on':>9} {'audio on':>9}"
    out = [header]
    for (sub, pub), kinds in pairs.items():
        v, a = kinds.get("video", {}), kinds.get("audio", {})
        lat = v.get("latency_ms") or {}
        out.append(
            f"{sub:<10} {pub:<10} {_fmt(v.get('rate')):>10} {_pct(v.get('loss')):>6} "
            f"{_fmt(lat.get('p50')):>8} {_fmt(lat.get('p95')):>8} "
            f"{_fmt(v.get('join_to_first_frame_s'), '.2f'):>6} {_fmt(a.get('rate')):>10} "
            f"{_pct(a.get('loss')):>6}"
            + (
                f" {_fmt(v.get('assigned_s')):>8}s {_fmt(a.get('assigned_s')):>8}s"
                if selecting
                else ""
            )
        )
    return "\n".join(out)
