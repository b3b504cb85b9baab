"""The `tertulia` command: serve, migrate, create-user, loadtest."""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import logging
import sys
from collections.abc import Sequence

from aiohttp import web
from pydantic import ValidationError

from sfu import AiortcCompatibilityError, check_media_stack
from signaling import logs, serving
from signaling.app import create_app
from signaling.config import ConfigError, Settings, ensure_data_dir, load_settings
from signaling.passwords import hash_password
from signaling.schemas import UserCreate
from signaling.workers import supervise, worker_count
from storage import users
from storage.database import Database
from storage.migrate import upgrade

log = logging.getLogger("tertulia")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["loadtest"]:  # a client of a running server: no server settings
        from client.loadtest.cli import main as loadtest

        return loadtest(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    overrides = (
        {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        if args.command == "serve"
        else {}
    )
    try:
        settings = load_settings(**overrides)
        logs.configure(settings.log_level, settings.log_format)
        return int(args.func(settings, args) or 0)
    except ConfigError as exc:
        print(f"tertulia: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tertulia", description="Tertulia meeting server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations and run the server")
    serve.add_argument("--host", help="address to listen on (default TERTULIA_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default TERTULIA_PORT or 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes behind the port (default: one per core with Redis and "
        "PostgreSQL configured, else 1; see docs/scaling.md)",
    )
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=_migrate)

    create = sub.add_parser("create-user", help="create an account; prints its id")
    create.add_argument("email")
    create.add_argument("--name", required=True, help="display name")
    create.add_argument("--admin", action="store_true", help="make the user an administrator")
    create.add_argument("--password", help="password (default: read from standard input)")
    create.set_defaults(func=_create_user)

    # handled in main() before parsing; listed here for --help
    sub.add_parser("loadtest", help="join load bots to a meeting and report (see --help)")
    return parser


async def _migrated_database(settings: Settings) -> Database:
    ensure_data_dir(settings)
    database = Database(settings.resolved_database_url)
    try:
        await upgrade(database)
    except Exception as exc:
        await database.dispose()
        raise ConfigError(f"cannot migrate the database: {type(exc).__name__}: {exc}") from None
    return database


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    async def run() -> None:
        database = await _migrated_database(settings)
        await database.dispose()

    asyncio.run(run())
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        check_media_stack()
    except AiortcCompatibilityError as exc:
        raise ConfigError(str(exc)) from None
    count = worker_count(settings, args.workers or settings.workers)
    if count == 1:
        return _serve_worker(settings, reuse_port=False)
    if settings.metrics_port is not None and settings.metrics_port + count - 1 > 65535:
        raise ConfigError(f"TERTULIA_METRICS_PORT: {count} workers need ports up to 65535")
    _migrate(settings, args)  # once, before the workers start
    log.info("starting %d workers on %s:%s", count, settings.host, settings.port)
    return supervise(count, functools.partial(_run_worker, settings))


def _run_worker(settings: Settings, index: int) -> None:
    """One worker process (spawned: it configures its own logging). Worker `index` serves
    its metrics on TERTULIA_METRICS_PORT + index."""
    logs.configure(settings.log_level, settings.log_format)
    if settings.metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": settings.metrics_port + index})
    sys.exit(_serve_worker(settings, reuse_port=True))


def _serve_worker(settings: Settings, *, reuse_port: bool) -> int:
    async def build() -> web.Application:
        database = await _migrated_database(settings)
        async with database.session() as session:
            if await users.count_users(session) == 0:
                log.warning(
                    "no accounts yet: create the first admin with "
                    "`tertulia create-user you@example.org --name 'Your Name' --admin`"
                )
        app = create_app(settings, database)

        async def close_database(_app: web.Application) -> None:
            await database.dispose()

        app.on_cleanup.append(close_database)
        log.info("Tertulia is running: open %s", settings.resolved_public_url)
        return app

    # until SIGTERM or SIGINT, then the worker drains (signaling.drain)
    serving.run(
        build(),
        _event_loop(settings.event_loop),
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port,
        keepalive_timeout=settings.idle_timeout_seconds,
    )
    return 0


def _event_loop(kind: str = "uvloop") -> asyncio.AbstractEventLoop:
    """uvloop when installed: its C event loop and UDP transports cut the per-packet cost.

    `TERTULIA_EVENT_LOOP=asyncio` keeps the standard loop (to measure what uvloop buys).
    """
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        log.info("uvloop not installed: using the standard asyncio event loop")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _create_user(settings: Settings, args: argparse.Namespace) -> int:
    password = args.password
    if password is None:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline()
        password = password.rstrip("\n")
    try:
        body = UserCreate(
            email=args.email,
            display_name=args.name,
            password=password,
            role="admin" if args.admin else "member",
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid {field}: {first['msg']}") from None

    async def run() -> int:
        database = await _migrated_database(settings)
        try:
            async with database.session() as session:
                user = await users.create_user(
                    session,
                    email=body.email,
                    display_name=body.display_name,
                    password_hash=hash_password(body.password),
                    role=body.role,
                )
            return user.id
        except users.EmailTaken:
            raise ConfigError(f"a user with e-mail {body.email} already exists") from None
        finally:
            await database.dispose()

    user_id = asyncio.run(run())
    sys.stdout.write(f"{user_id}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
