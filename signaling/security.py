"""Browser security headers on every response, and no library versions in `Server`.

The client is served from this origin and loads nothing from elsewhere, so the policy can
be strict: scripts and styles only from our files (no inline code, no `eval`), media and
images from here or the page's own blobs, connections (REST and the signaling WebSocket)
to this origin only, and no framing. Camera, microphone and screen capture are allowed for
this origin and no other; everything else a page could ask for is switched off.
"""

from __future__ import annotations

from aiohttp import web

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PERMISSIONS_POLICY = ", ".join(
    (
        "camera=(self)",
        "microphone=(self)",
        "display-capture=(self)",
        "fullscreen=(self)",
        "autoplay=(self)",
        "geolocation=()",
        "payment=()",
        "usb=()",
        "serial=()",
        "bluetooth=()",
        "midi=()",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Permissions-Policy": PERMISSIONS_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Server": "Tertulia",
}
HSTS = "max-age=31536000"


def install(app: web.Application, *, https: bool) -> None:
    """Add the headers to every response the app prepares (pages, files, API, errors)."""
    headers = dict(HEADERS)
    if https:  # only meaningful, and only safe to promise, when served over TLS
        headers["Strict-Transport-Security"] = HSTS

    async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(headers)

    app.on_response_prepare.append(add_headers)
