"""Late join, screen share on/off, leaving cleanly or by dropping the connection."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from tests.helpers import eventually

from .client import ClientPeer, person
from .media import Cast

logger = logging.getLogger(__name__)


HEALTHY_FPS = 20  # of the 30 sent: a camera that keeps arriving, on a busy 2-core machine


def _receives(c: ClientPeer, others: list[ClientPeer], frames: int = 10) -> bool:
    for other in others:
        for source in ("microphone", "camera"):
            probe = c.probe_for(other.pid, source)
            if probe is None or probe.frames < frames:
                return False
    return True


def check_mesh(cast: Cast, clients: list[ClientPeer]) -> None:
    """Every slot carries the person it names: their frames, size and audio level."""
    for c in clients:
        for other in clients:
            if other is not c:
                assert other.persona is not None
                for source in ("microphone", "camera"):
                    cast.check(c.probe_for(other.pid, source), other.persona, source, where=c.pid)


async def _mesh(server, cast: Cast, n: int, room: str = "room") -> list[ClientPeer]:
    clients = [person(server, cast[i], room=room) for i in range(n)]
    for c in clients:
        await c.join()
    await eventually(
        lambda: all(_receives(c, [o for o in clients if o is not c]) for c in clients),
        15,
        "mesh to flow",
        lambda: [c.describe() for c in clients],
    )
    check_mesh(cast, clients)
    return clients


async def test_late_joiner_and_screen_share(server, cast):
    clients = await _mesh(server, cast, 3)
    late = person(server, cast[3], "late")
    t0 = time.monotonic()
    await late.join()

    def late_decodes() -> bool:
        return all(
            cast.carries(late.probe_for(o.pid, "camera"), o.persona, "camera") for o in clients
        )

    await eventually(
        late_decodes,
        2.0,
        "late joiner to decode every camera",
        lambda: [
            cast.problems(late.probe_for(o.pid, "camera"), o.persona, "camera") for o in clients
        ],
    )
    elapsed = time.monotonic() - t0
    logger.info("late joiner decoded every camera after %.2fs", elapsed)
    assert elapsed < 2.0, f"late joiner decoded video after {elapsed:.2f}s"
    everyone = [*clients, late]
    await eventually(lambda: all(_receives(c, [late]) for c in clients), 5, "late seen and heard")
    check_mesh(cast, everyone)

    sharer = clients[0]
    assert sharer.persona is not None
    viewers = [c for c in everyone if c is not sharer]
    started = time.monotonic()
    await sharer.start_screen()

    def screen_flows() -> bool:
        for v in viewers:
            probe = v.probe_for(sharer.pid, "screen")
            if probe is None or probe.frames_since(started) < 10:
                return False
            if not cast.carries(probe, sharer.persona, "screen", since=started):
                return False
        return True

    await eventually(
        screen_flows,
        10,
        "screen share at every viewer",
        lambda: [
            [
                v.describe(),
                cast.problems(
                    v.probe_for(sharer.pid, "screen"), sharer.persona, "screen", since=started
                ),
            ]
            for v in viewers
        ],
    )
    # while the screen is shared, the sharer's camera keeps coming, still the camera
    sharing = time.monotonic()
    await asyncio.sleep(1.0)
    window = time.monotonic() - sharing
    for v in viewers:
        camera = v.probe_for(sharer.pid, "camera")
        assert camera is not None, f"{v.pid} lost {sharer.pid}'s camera slot during the share"
        fps = camera.frames_since(sharing) / window
        assert fps >= HEALTHY_FPS, (
            f"{v.pid} got {sharer.pid}'s camera at {fps:.1f} fps while sharing"
        )
        cast.check(camera, sharer.persona, "camera", since=sharing, where=f"{v.pid} while sharing")
        screen = v.probe_for(sharer.pid, "screen")
        cast.check(screen, sharer.persona, "screen", since=started, where=v.pid)
    screen_probes = [v.probe_for(sharer.pid, "screen") for v in viewers]

    await sharer.stop_screen()
    stopped = time.monotonic()
    await eventually(
        lambda: all((sharer.pid, "screen") not in v.receiving_from() for v in viewers),
        5,
        "slots_changed without the screen share",
    )
    await asyncio.sleep(0.3)
    counts = [p.frames for p in screen_probes]
    await asyncio.sleep(0.5)
    assert [p.frames for p in screen_probes] == counts, "screen frames after stop"
    # ... and the camera is still there afterwards
    await eventually(
        lambda: all(
            (camera := v.probe_for(sharer.pid, "camera")) is not None
            and camera.frames_since(stopped) >= 10
            for v in viewers
        ),
        5,
        "the sharer's camera after the share",
        lambda: [v.describe() for v in viewers],
    )
    for v in viewers:
        camera = v.probe_for(sharer.pid, "camera")
        cast.check(camera, sharer.persona, "camera", since=stopped, where=f"{v.pid} after sharing")
    assert server.stats()["decoders_started"] == 0
    for c in everyone:
        await c.close()


async def test_leave_and_connection_loss_leave_nothing_behind(server, cast):
    threads_before = threading.active_count()
    tasks_before = len(asyncio.all_tasks())
    clients = await _mesh(server, cast, 3)
    stayer, leaver, killed = clients

    await leaver.close(leave=True)
    await killed.close(leave=False)  # the browser vanished: no leave() call
    await eventually(lambda: server.stats()["participants"] == 1, 10, "server to drop both")
    assert killed.lost, "connection_lost was not reported"
    await eventually(lambda: stayer.receiving_from() == set(), 5, "stayer's slots to go idle")
    frames = {mid: p.frames for mid, p in stayer.probes.items()}
    await asyncio.sleep(0.5)
    assert {mid: p.frames for mid, p in stayer.probes.items()} == frames
    stats = server.stats()
    assert stats["peer_connections"] == 1 and stats["forwarded_streams"] == 0

    await stayer.close(leave=True)
    await eventually(lambda: server.stats()["participants"] == 0, 5, "empty server")
    stats = server.stats()
    assert stats["rooms"] == 0 and stats["peer_connections"] == 0
    await eventually(
        lambda: threading.active_count() <= threads_before,
        5,
        "threads to end",
        lambda: [t.name for t in threading.enumerate()],
    )
    await eventually(
        lambda: len(asyncio.all_tasks()) <= tasks_before,
        5,
        "tasks to end",
        lambda: [t.get_coro() for t in asyncio.all_tasks()],
    )
