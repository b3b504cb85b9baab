"""Late join, screen share on/off, leaving cleanly or by dropping the connection."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from .client import ClientPeer
from .conftest import wait_for

logger = logging.getLogger(__name__)


def _receives(c: ClientPeer, others: list[ClientPeer], frames: int = 10) -> bool:
    for other in others:
        for source in ("microphone", "camera"):
            probe = c.probe_for(other.pid, source)
            if probe is None or probe.frames < frames:
                return False
    return True


async def _mesh(server, clip, n: int, room: str = "room") -> list[ClientPeer]:
    clients = [ClientPeer(server, room, f"p{i}", clip) for i in range(n)]
    for c in clients:
        await c.join()
    await wait_for(
        lambda: all(_receives(c, [o for o in clients if o is not c]) for c in clients),
        15,
        "mesh to flow",
        lambda: [c.describe() for c in clients],
    )
    return clients


async def test_late_joiner_and_screen_share(server, clip):
    clients = await _mesh(server, clip, 3)
    late = ClientPeer(server, "room", "late", clip)
    t0 = time.monotonic()
    await late.join()

    def late_decodes() -> bool:
        for other in clients:
            probe = late.probe_for(other.pid, "camera")
            sample = probe.decode_sample() if probe else None
            if sample is None or (sample.width, sample.height) != (640, 480):
                return False
        return True

    await wait_for(late_decodes, 2.0, "late joiner to decode every camera", late.describe)
    elapsed = time.monotonic() - t0
    logger.info("late joiner decoded every camera after %.2fs", elapsed)
    assert elapsed < 2.0, f"late joiner decoded video after {elapsed:.2f}s"
    everyone = [*clients, late]
    await wait_for(
        lambda: all(("late", "camera") in c.receiving_from() for c in clients), 5, "late seen"
    )

    sharer = clients[0]
    await sharer.start_screen()
    viewers = [c for c in everyone if c is not sharer]

    def screen_flows() -> bool:
        for v in viewers:
            probe = v.probe_for(sharer.pid, "screen")
            if probe is None or probe.frames < 10 or probe.decode_sample() is None:
                return False
        return True

    await wait_for(
        screen_flows, 10, "screen share at every viewer", lambda: [v.describe() for v in viewers]
    )
    screen_probes = [v.probe_for(sharer.pid, "screen") for v in viewers]

    await sharer.stop_screen()
    await wait_for(
        lambda: all((sharer.pid, "screen") not in v.receiving_from() for v in viewers),
        5,
        "slots_changed without the screen share",
    )
    await asyncio.sleep(0.3)
    counts = [p.frames for p in screen_probes]
    await asyncio.sleep(0.5)
    assert [p.frames for p in screen_probes] == counts, "screen frames after stop"
    assert all((sharer.pid, "camera") in v.receiving_from() for v in viewers)
    assert server.stats()["decoders_started"] == 0
    for c in everyone:
        await c.close()


async def test_leave_and_connection_loss_leave_nothing_behind(server, clip):
    threads_before = threading.active_count()
    tasks_before = len(asyncio.all_tasks())
    clients = await _mesh(server, clip, 3)
    stayer, leaver, killed = clients

    await leaver.close(leave=True)
    await killed.close(leave=False)  # the browser vanished: no leave() call
    await wait_for(lambda: server.stats()["participants"] == 1, 10, "server to drop both")
    assert killed.lost, "connection_lost was not reported"
    await wait_for(lambda: stayer.receiving_from() == set(), 5, "stayer's slots to go idle")
    frames = {mid: p.frames for mid, p in stayer.probes.items()}
    await asyncio.sleep(0.5)
    assert {mid: p.frames for mid, p in stayer.probes.items()} == frames
    stats = server.stats()
    assert stats["peer_connections"] == 1 and stats["forwarded_streams"] == 0

    await stayer.close(leave=True)
    await wait_for(lambda: server.stats()["participants"] == 0, 5, "empty server")
    stats = server.stats()
    assert stats["rooms"] == 0 and stats["peer_connections"] == 0
    await wait_for(
        lambda: threading.active_count() <= threads_before,
        5,
        "threads to end",
        lambda: [t.name for t in threading.enumerate()],
    )
    await wait_for(
        lambda: len(asyncio.all_tasks()) <= tasks_before,
        5,
        "tasks to end",
        lambda: [t.get_coro() for t in asyncio.all_tasks()],
    )
