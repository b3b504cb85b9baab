"""JWT access tokens (HS256) carrying sub, role, iat and exp."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from signaling.identifiers import parse_id

ALGORITHM = "HS256"


def _user_id(sub: Any) -> int:
    """The user id a token's `sub` names. Only this server signs tokens, but a claim is
    still input: a `sub` the database cannot hold is refused here, not inside a query."""
    user_id = parse_id(sub)
    if user_id is None:
        raise ValueError("bad sub")
    return user_id


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    role: str
    issued_at: int
    expires_at: int


class TokenService:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: int, role: str, *, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        payload = {
            "sub": str(user_id),
            "role": role,
            "iat": issued,
            "exp": issued + self.ttl_seconds,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def issue_media(self, user_id: int, recording_id: int, ttl_seconds: int = 600) -> str:
        """A short-lived token that opens one recording's files and nothing else; for
        `<video src>` and download links, which cannot send an Authorization header."""
        now = int(time.time())
        payload = {
            "sub": str(user_id),
            "scope": "recording",
            "rid": recording_id,
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def issue_device(self, account: str, ttl_seconds: int) -> str:
        """A device cookie's value: proof that this browser signed in to `account` (the
        normalized e-mail) before. It signs nobody in; the sign-in throttle trusts it."""
        now = int(time.time())
        payload = {
            "scope": "device",
            "acct": account,
            "did": secrets.token_urlsafe(12),
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def verify_device(self, token: str, account: str) -> str | None:
        """The device id of a valid device cookie for `account`, else None."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["scope", "acct", "did", "exp"]},
            )
        except jwt.InvalidTokenError:
            return None
        if payload.get("scope") != "device" or payload.get("acct") != account:
            return None
        device = payload.get("did")
        return device if isinstance(device, str) else None

    def verify_media(self, token: str, recording_id: int) -> int:
        """The user id a media token was issued to, if it opens this recording."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "scope", "rid", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token-expired", "the link has expired; open it again") from None
        except jwt.InvalidTokenError:
            raise TokenError("invalid-token", "the link is not valid") from None
        if payload.get("scope") != "recording" or payload.get("rid") != recording_id:
            raise TokenError("invalid-token", "the link is for another recording")
        try:
            return _user_id(payload["sub"])
        except ValueError:
            raise TokenError("invalid-token", "the link is not valid") from None

    def verify(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "role", "iat", "exp"]},
            )
            if "scope" in payload:  # a media link token never signs anybody in
                raise jwt.InvalidTokenError("scoped token")
            return TokenClaims(
                user_id=_user_id(payload["sub"]),
                role=str(payload["role"]),
                issued_at=int(payload["iat"]),
                expires_at=int(payload["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token-expired", "the token has expired; sign in again") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise TokenError("invalid-token", "the token is not valid") from None
