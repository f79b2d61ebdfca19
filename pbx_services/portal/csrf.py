"""Cross-site request forgery protection, on every request that changes something.

A browser request (session cookie) that is not GET/HEAD/OPTIONS must carry the session's
token, in the form field `csrf_token` (templates: `{{ csrf_field() }}`) or in the header
`X-CSRF-Token` (the page's scripts read it from `<meta name="csrf-token">`); without it: 400.
A script using HTTP Basic authentication has no cookie a forged page could ride on, but a
browser may have cached Basic credentials: such a request must be `application/json`, which
a cross-site form cannot send without the browser asking the portal first (CORS).
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session
from markupsafe import Markup, escape

TOKEN_KEY = "csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token() -> str:
    """The session's token, made on first use."""
    token = session.get(TOKEN_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[TOKEN_KEY] = token
    return token


def csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="{FORM_FIELD}" value="{escape(csrf_token())}">')


def check_csrf(*, basic_auth: bool) -> None:
    """Abort with 400 unless the request is safe or carries what proves it comes from our pages."""
    if request.method in SAFE_METHODS:
        return
    if basic_auth:
        if request.mimetype != "application/json":
            abort(400, description="a request authenticated with HTTP Basic must be application/json")
        return
    expected = session.get(TOKEN_KEY)
    given = request.headers.get(HEADER) or request.form.get(FORM_FIELD)
    if not isinstance(expected, str) or not given or not hmac.compare_digest(given, expected):
        abort(400, description="missing or wrong CSRF token: reload the page and try again")
