"""One worker's life: listen, serve until SIGTERM or SIGINT, drain, clean up.

aiohttp's `run_app` would meet those signals by starting its own shutdown at once, and the
first step of that (after closing the listening socket) makes every open connection ignore
what its client sends: a `hello` arriving then is never read, nor a client's close frame.
So the worker handles the signals itself and drains (`signaling.drain`) while its
connections still work, then lets aiohttp clean up (handlers, then the app's cleanup
contexts: media, jobs, the cluster link).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable

from aiohttp import web

from signaling import logs
from signaling.keys import DRAIN

log = logging.getLogger("tertulia")
SHUTDOWN_SECONDS = 10.0  # aiohttp's wait for handlers still running after the drain


def run(
    build: Awaitable[web.Application],
    loop: asyncio.AbstractEventLoop,
    *,
    host: str,
    port: int,
    reuse_port: bool,
    keepalive_timeout: float,
) -> None:
    """Serve on `loop` until a signal, then drain and close the loop."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(
            _serve(
                build,
                host=host,
                port=port,
                reuse_port=reuse_port,
                keepalive_timeout=keepalive_timeout,
            )
        )
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(
    build: Awaitable[web.Application],
    *,
    host: str,
    port: int,
    reuse_port: bool,
    keepalive_timeout: float,
) -> None:
    app = await build
    # keepalive_timeout also bounds how long a connection may take to send a request head:
    # aiohttp arms it when the connection opens and closes a connection that is still
    # waiting for a complete request when it fires (slow-header clients included).
    runner = web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=keepalive_timeout,
        shutdown_timeout=SHUTDOWN_SECONDS,
        access_log_class=logs.RequestAccessLogger,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        await _signalled()
        log.info("stopping: this worker drains (new connections go to the others)")
        await app[DRAIN].leave(runner.sites)
    finally:
        await runner.cleanup()


async def _signalled() -> None:
    """Until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
