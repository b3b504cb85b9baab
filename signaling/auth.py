"""Who is calling: bearer token → active user, and role checks."""

from __future__ import annotations

from aiohttp import web

from signaling.errors import ApiError
from signaling.keys import DATABASE, TOKENS
from signaling.permissions import Action, require
from signaling.tokens import TokenError
from storage import users
from storage.models import User


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing-token", "send Authorization: Bearer <token>")
    return token.strip()


async def user_for_token(app: web.Application, token: str) -> User:
    """The active user a token belongs to; disabled users are refused even with a valid token."""
    try:
        claims = app[TOKENS].verify(token)
    except TokenError as exc:
        raise ApiError(401, exc.code, exc.message) from None
    async with app[DATABASE].session() as session:
        user = await users.get_user(session, claims.user_id)
    if user is None:
        raise ApiError(401, "invalid-token", "the token's user does not exist")
    if not user.is_active:
        raise ApiError(403, "account-disabled", "this account is disabled")
    return user


async def current_user(request: web.Request) -> User:
    return await user_for_token(request.app, bearer_token(request))


async def current_user_who_may(request: web.Request, action: Action) -> User:
    """The signed-in user, if the action needs no meeting role and they may take it."""
    user = await current_user(request)
    require(user, None, action)
    return user
