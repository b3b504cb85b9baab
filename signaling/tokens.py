"""JWT access tokens (HS256) carrying sub, role, iat and exp."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


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

    def verify(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "role", "iat", "exp"]},
            )
            return TokenClaims(
                user_id=int(payload["sub"]),
                role=str(payload["role"]),
                issued_at=int(payload["iat"]),
                expires_at=int(payload["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token-expired", "the token has expired; sign in again") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise TokenError("invalid-token", "the token is not valid") from None
