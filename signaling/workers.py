"""`tertulia serve --workers N`: N worker processes behind one port (docs/scaling.md).

Each worker is a whole Tertulia (signaling and media) binding the same address with
`SO_REUSEPORT`; the kernel spreads new connections over them. Chosen over a front process that
hands sockets over: no extra hop or single process on the path, and a worker that dies simply
stops being offered connections. A meeting's people may land on any worker: they meet through
Redis (`signaling.cluster`) and the media pipes between workers, so more than one worker
needs `TERTULIA_REDIS_URL` and a database they share (PostgreSQL).

The parent process migrates the database once, starts the workers, restarts one that dies
(with a pause, so a worker that cannot start does not spin), and on SIGTERM or SIGINT passes
the signal on and waits for them to drain (`signaling.drain`: each stops listening, hands its
recordings over, and tells its clients to reconnect, which they do on another node). A
SIGTERM sent to one worker alone drains that worker only: its people move to the others and
a fresh worker takes its place, a restart with nobody dropped. A supervisor killed outright
takes its workers with it (each drains on its parent's death, `_follow`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from signaling.config import ConfigError, Settings

log = logging.getLogger("tertulia")
RESTART_PAUSE_SECONDS = 1.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_GRACE_SECONDS = 20.0


def worker_count(settings: Settings, asked: int | None) -> int:
    """How many workers: as asked, else one per core when the deployment can share state
    (Redis and PostgreSQL), else one. More than one without them is refused."""
    shared = bool(settings.redis_url) and not settings.resolved_database_url.startswith("sqlite")
    if asked is None:
        return (os.cpu_count() or 1) if shared else 1
    if asked < 1:
        raise ConfigError("--workers must be at least 1")
    if asked > 1 and not shared:
        raise ConfigError(
            "more than one worker needs TERTULIA_REDIS_URL and a PostgreSQL "
            "TERTULIA_DATABASE_URL (the workers share meetings through them)"
        )
    return asked


def _worker(run_worker: Callable[[int], None], index: int, supervisor: int) -> None:
    """A worker process: it drains and exits with its supervisor, however that ends (a
    supervisor killed outright must not leave unsupervised workers holding the port)."""
    _follow(supervisor)
    run_worker(index)


def _follow(supervisor: int) -> None:
    """SIGTERM (the worker's drain) when the supervisor dies: Linux's PR_SET_PDEATHSIG; and
    at once if it died before that was set (this process was re-parented already)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != supervisor:
        os.kill(os.getpid(), signal.SIGTERM)


def supervise(count: int, run_worker: Callable[[int], None]) -> int:
    """Run `run_worker(index)` in `count` processes until SIGTERM/SIGINT; returns the exit code."""
    context = multiprocessing.get_context("spawn")
    processes: dict[int, BaseProcess] = {}
    stopping = False

    def start(index: int) -> None:
        process = context.Process(
            target=_worker, args=(run_worker, index, os.getpid()), name=f"tertulia-worker-{index}"
        )
        process.start()
        processes[index] = process
        log.info("worker %d started (pid %s)", index, process.pid)

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(count):
            start(index)
        while not stopping:
            time.sleep(0.2)
            for index, process in list(processes.items()):
                if not process.is_alive() and not stopping:
                    # 0: it was drained on purpose (SIGTERM to it alone); else it died
                    report = log.info if process.exitcode == 0 else log.error
                    report("worker %d exited with %s; restarting it", index, process.exitcode)
                    time.sleep(RESTART_PAUSE_SECONDS)
                    start(index)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
