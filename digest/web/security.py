"""CSRF (signed double-submit token), same-origin check and security headers for every response."""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.datastructures import FormData, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "digest_csrf"
CSRF_MAX_AGE = 24 * 3600
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}")

CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
# An archived digest is the email's own HTML: inline styles and remote images, never scripts or forms.
CSP_ARCHIVE = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'none'; "
               "base-uri 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # URLs carry tokens: never send them to the papers' sites. (Not "no-referrer": with it, browsers
    # send `Origin: null` on form posts, which hides a same-site post from the origin check.)
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Csrf:
    """Double-submit: a random nonce in an HttpOnly cookie, and the same nonce signed (with the
    site secret and a timestamp) in each form. A forged form has neither the cookie's value nor a
    way to sign one."""

    def __init__(self, secret: str | tuple[str, ...], secure: bool = False):
        # several secrets: the first signs, all verify (itsdangerous takes them newest last)
        keys = secret if isinstance(secret, str) else list(reversed(secret))
        self.serializer = URLSafeTimedSerializer(keys, salt="digest.csrf")
        self.secure = secure

    def nonce(self, request: Request) -> tuple[str, bool]:
        """The request's nonce, or a new one (second value True: the response must set the cookie)."""
        current = request.cookies.get(COOKIE, "")
        if _NONCE.fullmatch(current):
            return current, False
        return secrets.token_urlsafe(32), True

    def token(self, nonce: str) -> str:
        return self.serializer.dumps(nonce)

    def set_cookie(self, response: Response, nonce: str) -> None:
        response.set_cookie(COOKIE, nonce, httponly=True, samesite="lax", secure=self.secure, path="/")

    def valid(self, request: Request, form: FormData) -> bool:
        nonce, field = request.cookies.get(COOKIE, ""), form.get("csrf")
        if not _NONCE.fullmatch(nonce) or not isinstance(field, str):
            return False
        try:
            signed = self.serializer.loads(field, max_age=CSRF_MAX_AGE)
        except BadData:
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed, nonce)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, base_url: str) -> bool:
    """Refuse a browser POST that says it came from another site (Origin / Sec-Fetch-Site)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # older browsers and non-browser clients: the CSRF token still has to match
    if origin == "null":  # privacy-sensitive or sandboxed context: trust only the browser's own word
        return request.headers.get("sec-fetch-site") == "same-origin"
    host = request.headers.get("host", "")
    return origin.lower() in {_origin(base_url), f"{request.url.scheme}://{host}".lower()}


class SecurityHeaders:
    """Adds HEADERS to every response that does not set its own value."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                static = "/static/" in scope.get("path", "")
                for key, value in HEADERS.items():
                    if key not in headers and not (static and key == "Cache-Control"):
                        headers[key] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
