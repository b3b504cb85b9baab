"""Who is calling: bearer token → active user, and role checks.

Refusals are written to the audit trail: a refused token (`token-refused`, sampled per
address, see `signaling.throttle.RefusalSampler`) and, where the caller names the act, a
refused permission (`current_user_who_may(..., audit_as=...)`).
"""

from __future__ import annotations

from aiohttp import web

from signaling.addresses import client_address
from signaling.errors import ApiError
from signaling.keys import DATABASE, SETTINGS, TOKEN_REFUSALS, TOKENS
from signaling.permissions import Action, require
from signaling.tokens import TokenError
from storage import audit, users
from storage.models import User


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing-token", "send Authorization: Bearer <token>")
    return token.strip()


def request_address(request: web.Request) -> str:
    """The client's address (the last untrusted `X-Forwarded-For` hop behind a proxy)."""
    return client_address(request, request.app[SETTINGS].trusted_proxies)


async def refuse_token(
    app: web.Application,
    error: ApiError,
    address: str | None,
    user_id: int | None = None,
    recording_id: int | None = None,
) -> ApiError:
    """Audit a refused token (`token-refused`, its error code in the detail), at most once a
    minute per address: anyone can send bad tokens as fast as they like. Returns `error`."""
    skipped = app[TOKEN_REFUSALS].admit(address or "")
    if skipped is not None:
        more = f" ({skipped} more from this address not written since the last row)"
        async with app[DATABASE].session() as session:
            await audit.record(
                session,
                user_id=user_id,
                action="token-refused",
                outcome="refused",
                recording_id=recording_id,
                address=address,
                detail=f"{error.code}: {error.message}" + (more if skipped else ""),
            )
    return error


async def user_for_token(app: web.Application, token: str, address: str | None = None) -> User:
    """The active user a token belongs to; disabled users are refused even with a valid token.
    A refusal is audited (sampled), from `address` when the caller knows it."""
    try:
        claims = app[TOKENS].verify(token)
    except TokenError as exc:
        raise await refuse_token(app, ApiError(401, exc.code, exc.message), address) from None
    async with app[DATABASE].session() as session:
        user = await users.get_user(session, claims.user_id)
    if user is None:
        error = ApiError(401, "invalid-token", "the token's user does not exist")
        raise await refuse_token(app, error, address)
    if not user.is_active:
        error = ApiError(403, "account-disabled", "this account is disabled")
        raise await refuse_token(app, error, address, user_id=user.id)
    return user


async def current_user(request: web.Request) -> User:
    return await user_for_token(request.app, bearer_token(request), request_address(request))


async def current_user_who_may(
    request: web.Request,
    action: Action,
    *,
    audit_as: str | None = None,
    subject_user_id: int | None = None,
) -> User:
    """The signed-in user, if the action needs no meeting role and they may take it.
    With `audit_as`, a refusal is written to the audit trail as that action, refused."""
    user = await current_user(request)
    try:
        require(user, None, action)
    except ApiError as refusal:
        if audit_as is not None:
            async with request.app[DATABASE].session() as session:
                await audit.record(
                    session,
                    user_id=user.id,
                    action=audit_as,
                    outcome="refused",
                    subject_user_id=subject_user_id,
                    address=request_address(request),
                    detail=f"{refusal.code}: {refusal.message}",
                )
        raise
    return user
