"""Bot accounts and the meeting, through the documented REST API (docs/api.md).

With an administrator's credentials the load test creates one member account per bot
(`POST /api/users`, e-mail `loadbot-<run>-<n>@loadtest.example`), signs each in, and
creates a meeting for them unless one is given. Cleanup ends that meeting and disables
the bot accounts (accounts cannot be deleted through the API).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
BOT_EMAIL_DOMAIN = "loadtest.example"


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any, what: str) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(
            f"{what}: HTTP {status} {error.get('code', '')} {error.get('message', '')}"
        )
        self.status = status
        self.code = error.get("code")


class Api:
    """The few REST calls a load test needs."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, what: str, token: str | None = None, body: Any = None
    ) -> Any:
        assert self._session is not None, "use `async with Api(url)`"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._session.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            data = await response.json() if response.content_length != 0 else None
            if response.status >= 400:
                raise ApiError(response.status, data, what)
            return data

    async def login(self, email: str, password: str) -> str:
        body = await self.call(
            "POST",
            "/api/auth/login",
            f"sign-in as {email}",
            body={"email": email, "password": password},
        )
        return str(body["token"])

    async def create_meeting(self, token: str, title: str, max_participants: int) -> str:
        body = await self.call(
            "POST",
            "/api/meetings",
            "create the meeting",
            token,
            {"title": title, "settings": {"max_participants": max(2, max_participants)}},
        )
        return str(body["room_id"])

    async def end_meeting(self, token: str, room_id: str) -> None:
        await self.call("POST", f"/api/meetings/{room_id}/end", "end the meeting", token)


@dataclass
class BotAccounts:
    """Tokens of the bots, and what to undo afterwards."""

    tokens: list[str]
    admin_token: str | None = None
    user_ids: list[int] = field(default_factory=list)

    async def disable(self, api: Api) -> None:
        for user_id in self.user_ids:
            try:
                await api.call(
                    "PATCH",
                    f"/api/users/{user_id}",
                    "disable a bot account",
                    self.admin_token,
                    {"is_active": False},
                )
            except (ApiError, aiohttp.ClientError) as exc:
                log.warning("could not disable bot account %d: %s", user_id, exc)


async def create_bot_accounts(api: Api, admin_token: str, count: int) -> BotAccounts:
    run = secrets.token_hex(3)
    accounts = BotAccounts([], admin_token)
    for n in range(1, count + 1):
        email = f"loadbot-{run}-{n}@{BOT_EMAIL_DOMAIN}"
        password = secrets.token_urlsafe(18)
        user = await api.call(
            "POST",
            "/api/users",
            "create a bot account (needs an admin)",
            admin_token,
            {"email": email, "display_name": f"Load bot {n} ({run})", "password": password},
        )
        accounts.user_ids.append(int(user["id"]))
        accounts.tokens.append(await api.login(email, password))
    log.info("created %d bot accounts (run %s)", count, run)
    return accounts


def read_tokens(path: Path) -> list[str]:
    """One JWT per line; blank lines and lines starting with # are ignored."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]
