"""Sign-in, the caller's own account, and admin user management."""

from __future__ import annotations

import asyncio

from aiohttp import web

from signaling.auth import current_user, current_user_who_may, request_address
from signaling.errors import ApiError
from signaling.handlers.bodies import json_model, parse_body, parse_query, path_id
from signaling.handlers.table import ROUTES
from signaling.identifiers import parse_id
from signaling.keys import DATABASE, SETTINGS, THROTTLE, TOKENS
from signaling.passwords import hash_password, verify_password
from signaling.permissions import Action
from signaling.schemas import (
    LoginRequest,
    LoginResponse,
    PageQuery,
    RegisterRequest,
    UserCreate,
    UserOut,
    UserPage,
    UserPatch,
)
from signaling.throttle import Attempt
from storage import audit, users
from storage.models import AuditOutcome, User

DEVICE_COOKIE = "tertulia_device"
DEVICE_COOKIE_DAYS = 180


def _login_response(request: web.Request, user: User) -> web.Response:
    """The token, and a device cookie that lets this browser through the sign-in throttle's
    account-wide block later (see signaling/throttle.py)."""
    tokens = request.app[TOKENS]
    response = json_model(
        LoginResponse(
            token=tokens.issue(user.id, user.role),
            expires_in=tokens.ttl_seconds,
            user=UserOut.model_validate(user),
        )
    )
    max_age = DEVICE_COOKIE_DAYS * 86400
    response.set_cookie(
        DEVICE_COOKIE,
        tokens.issue_device(user.email, max_age),
        max_age=max_age,
        path="/api/auth",
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].resolved_public_url.startswith("https://"),
    )
    return response


def _attempt(request: web.Request, email: str) -> Attempt:
    account = users.normalize_email(email)
    cookie = request.cookies.get(DEVICE_COOKIE)
    return Attempt(
        account=account,
        address=request_address(request),
        device=request.app[TOKENS].verify_device(cookie, account) if cookie else None,
    )


async def _audit_sign_in(
    request: web.Request,
    attempt: Attempt,
    user: User | None,
    rows: list[tuple[str, str]],
    outcome: AuditOutcome = "refused",
    look_up: bool = False,
) -> None:
    """Audit rows (action, detail) about a sign-in attempt, in one transaction: the actor is
    the account when it exists (else None: the attempted e-mail is in the detail). With
    `look_up`, the account is found by the attempt's e-mail (`user` was not looked up)."""
    async with request.app[DATABASE].session() as session:
        if look_up:
            user = await users.get_user_by_email(session, attempt.account)
        for action, detail in rows:
            await audit.record(
                session,
                user_id=user.id if user else None,
                action=action,
                outcome=outcome,
                address=attempt.address,
                detail=f"{detail}; account {attempt.account!r} from {attempt.address}",
            )


async def _audit_account(
    request: web.Request,
    admin: User,
    action: str,
    subject: int,
    detail: str,
    outcome: AuditOutcome = "ok",
) -> None:
    async with request.app[DATABASE].session() as session:
        await audit.record(
            session,
            user_id=admin.id,
            action=action,
            outcome=outcome,
            subject_user_id=subject,
            address=request_address(request),
            detail=detail,
        )


@ROUTES.route(
    "POST",
    "/api/auth/login",
    summary="Sign in with e-mail and password",
    tag="auth",
    auth=False,
    body=LoginRequest,
    response=LoginResponse,
    errors=(401, 403, 429),
)
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginRequest)
    throttle = request.app[THROTTLE]
    attempt = _attempt(request, body.email)
    wait, refusal = throttle.check(attempt)
    if wait:
        if refusal is not None:  # one audit row per block, not one per refused request
            detail = f"refused while the {refusal.kind} is blocked for {refusal.retry_after} s"
            await _audit_sign_in(
                request, attempt, None, [("sign-in-refused", detail)], look_up=True
            )
        raise ApiError(
            429,
            "too-many-attempts",
            f"too many failed sign-ins: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    async with request.app[DATABASE].session() as session:
        user = await users.get_user_by_email(session, body.email)
    stored_hash = user.password_hash if user else None
    # argon2 takes tens of milliseconds: keep it off the event loop that carries media.
    if not await asyncio.to_thread(verify_password, stored_hash, body.password) or user is None:
        reason = "wrong password" if user else "no such account"
        rows = [("sign-in-failed", reason)]
        for block in throttle.failed(attempt):
            detail = (
                f"{block.failures} failed sign-ins: {block.kind} blocked for {block.seconds:g} s"
            )
            rows.append(("sign-in-blocked", detail))
        # the same write whether or not the account exists: the timing tells nobody which
        await _audit_sign_in(request, attempt, user, rows)
        raise ApiError(401, "invalid-credentials", "wrong e-mail or password")
    if not user.is_active:
        await _audit_sign_in(request, attempt, user, [("sign-in-failed", "account disabled")])
        raise ApiError(403, "account-disabled", "this account is disabled")
    throttle.succeeded(attempt)
    await _audit_sign_in(request, attempt, user, [("sign-in", "signed in")], outcome="ok")
    return _login_response(request, user)


@ROUTES.route(
    "POST",
    "/api/auth/register",
    summary="Self-registration (only when enabled)",
    tag="auth",
    auth=False,
    body=RegisterRequest,
    response=LoginResponse,
    status=201,
    errors=(403, 409),
)
async def register(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].allow_registration:
        raise ApiError(403, "registration-disabled", "self-registration is disabled here")
    body = await parse_body(request, RegisterRequest)
    user = await _create(request, body.email, body.display_name, body.password, "member")
    await _audit_account(request, user, "register", user.id, f"{user.email} registered")
    response = _login_response(request, user)
    response.set_status(201)
    return response


@ROUTES.route(
    "GET",
    "/api/me",
    summary="The signed-in user",
    tag="auth",
    response=UserOut,
)
async def me(request: web.Request) -> web.Response:
    return json_model(UserOut.model_validate(await current_user(request)))


@ROUTES.route(
    "POST",
    "/api/users",
    summary="Create a user (admin)",
    tag="users",
    body=UserCreate,
    response=UserOut,
    status=201,
    errors=(409,),
)
async def create_user(request: web.Request) -> web.Response:
    admin = await current_user_who_may(request, Action.MANAGE_USERS, audit_as="account-create")
    body = await parse_body(request, UserCreate)
    user = await _create(request, body.email, body.display_name, body.password, body.role)
    detail = f"{user.email} ({user.display_name!r}), role {user.role}"
    await _audit_account(request, admin, "account-create", user.id, detail)
    return json_model(UserOut.model_validate(user), status=201)


@ROUTES.route(
    "GET",
    "/api/users",
    summary="List users (admin)",
    tag="users",
    query=PageQuery,
    response=UserPage,
)
async def list_users(request: web.Request) -> web.Response:
    await current_user_who_may(request, Action.MANAGE_USERS, audit_as="account-list")
    page = parse_query(request, PageQuery)
    async with request.app[DATABASE].session() as session:
        rows, total = await users.list_users(session, limit=page.limit, offset=page.offset)
        items = [UserOut.model_validate(u) for u in rows]
    return json_model(UserPage(items=items, total=total, limit=page.limit, offset=page.offset))


@ROUTES.route(
    "PATCH",
    "/api/users/{user_id}",
    summary="Change a user's name, role or active flag (admin)",
    tag="users",
    body=UserPatch,
    response=UserOut,
    errors=(404, 409),
)
async def patch_user(request: web.Request) -> web.Response:
    admin = await current_user_who_may(
        request,
        Action.MANAGE_USERS,
        audit_as="account-update",
        subject_user_id=parse_id(request.match_info["user_id"]),
    )
    user_id = path_id(request, "user_id", "user-not-found", "user")
    body = await parse_body(request, UserPatch)
    changes = body.model_dump()  # fields left out are MISSING, and not dumped
    if user_id == admin.id and (
        changes.get("is_active") is False or changes.get("role") == "member"
    ):
        detail = "cannot-demote-self: " + _changes_asked(changes)
        await _audit_account(request, admin, "account-update", user_id, detail, "refused")
        raise ApiError(
            409, "cannot-demote-self", "an administrator cannot disable or demote themself"
        )
    async with request.app[DATABASE].session() as session:
        user = await users.get_user(session, user_id)
        if user is None:
            raise ApiError(404, "user-not-found", "no such user")
        changed = [
            f"{name} {_shown(getattr(user, name))} → {_shown(value)}"
            for name, value in changes.items()
            if getattr(user, name) != value
        ]
        for name, value in changes.items():
            setattr(user, name, value)
        await session.flush()
        out = UserOut.model_validate(user)
        await audit.record(
            session,
            user_id=admin.id,
            action="account-update",
            subject_user_id=user.id,
            address=request_address(request),
            detail=f"{user.email}: " + ("; ".join(changed) or "no change"),
        )
    return json_model(out)


def _changes_asked(changes: dict[str, object]) -> str:
    return "; ".join(f"{name} → {_shown(value)}" for name, value in changes.items())


def _shown(value: object) -> str:
    """A field's value in an audit detail: true/false, a role as is, a name quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value in ("admin", "member"):
        return value
    return repr(value)


async def _create(request: web.Request, email: str, name: str, password: str, role: str) -> User:
    password_hash = await asyncio.to_thread(hash_password, password)
    async with request.app[DATABASE].session() as session:
        try:
            return await users.create_user(
                session,
                email=email,
                display_name=name,
                password_hash=password_hash,
                role=role,
            )
        except users.EmailTaken:
            raise ApiError(409, "email-taken", "an account with this e-mail exists") from None
