#!/usr/bin/env python3
"""Ask a deployed web portal over HTTPS: its /health, its login page, and a login.

    portal_probe.py https://HOST:PORT --certificate PEM [--user NAME --password PW [--servers]]
    portal_probe.py https://HOST:PORT --certificate PEM --watch [--interval 0.1] [--until-file F]

Prints one JSON object: the certificate's SHA-256, /health's status, the login page's status
and whether it holds a password form with a CSRF token, and with --user the login: the form
posted with the page's hidden fields, the redirect followed, whether the page reached is a
logged-in one (not the login page again); with --servers then, the cluster's servers as
`/api/v1/servers` lists them (name, role, state, holds_vip). The connection trusts --certificate alone (the
portal's self-signed one, fetched from a host) and checks that it names HOST, so a probe of
the VIP also checks that the certificate names the VIP.

With --watch, asks /health every --interval seconds until --until-file exists and prints one
JSON line per change between answering and not, with the monotonic time (the same clock as
systemd's *TimestampMonotonic in the lab's containers). Runs in the lab's controller
namespace, with nothing but the Python standard library (the molecule scenario and the lab
tests use it).
"""

from __future__ import annotations

import argparse
import hashlib
import http.cookiejar
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

REQUEST_TIMEOUT = 5.0


class LoginForm(HTMLParser):
    """The first form with a password field: its action and its inputs (name, type, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": attributes.get("action", ""), "inputs": []})
        elif tag == "input" and self.forms:
            kind = attributes.get("type", "text").lower()
            self.forms[-1]["inputs"].append((attributes.get("name", ""), kind, attributes.get("value", "")))

    def login_form(self) -> dict | None:
        for form in self.forms:
            if any(kind == "password" for _, kind, _ in form["inputs"]):
                return form
        return None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def tls_context(certificate: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certificate)


def get(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None) -> tuple[int, str, dict]:
    """Status, body and headers of one request; an HTTP error status is an answer too."""
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=REQUEST_TIMEOUT) as response:
            return response.status, response.read().decode(errors="replace"), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), dict(exc.headers)


def peer_certificate_sha256(base: str, context: ssl.SSLContext) -> str:
    parsed = urllib.parse.urlsplit(base)
    with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=REQUEST_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=parsed.hostname) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()


def probe(base: str, certificate: str, user: str | None, password: str | None,
          servers: bool = False) -> dict:
    context = tls_context(certificate)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                         urllib.request.HTTPCookieProcessor(jar), NoRedirect())
    report: dict = {"certificate_sha256": peer_certificate_sha256(base, context)}
    report["health"], _, _ = get(opener, f"{base}/health")
    status, page, _ = get(opener, f"{base}/login")
    parser = LoginForm()
    parser.feed(page)
    form = parser.login_form()
    csrf = bool(form and any("csrf" in name.lower() for name, _, _ in form["inputs"]))
    report["login_page"] = {"status": status, "password_form": form is not None, "csrf_token": csrf}
    if user is None or form is None:
        return report
    fields = []
    user_given = False
    for name, kind, value in form["inputs"]:
        if not name:
            continue
        if kind == "password":
            fields.append((name, password or ""))
        elif kind in ("text", "email") and not user_given:
            fields.append((name, user))
            user_given = True
        elif kind in ("hidden", "text", "email"):
            fields.append((name, value))
    action = urllib.parse.urljoin(f"{base}/login", form["action"] or f"{base}/login")
    status, _, headers = get(opener, action, urllib.parse.urlencode(fields).encode())
    location = urllib.parse.urljoin(action, headers.get("Location", ""))
    login: dict = {"status": status, "location": headers.get("Location", "")}
    if status in (301, 302, 303) and location:
        landed, landed_page, _ = get(opener, location)
        after = LoginForm()
        after.feed(landed_page)
        login["landed"] = landed
        login["logged_in"] = landed == 200 and after.login_form() is None and "/login" not in location
    else:
        login["logged_in"] = False
    report["login"] = login
    if servers and login["logged_in"]:
        status, body, _ = get(opener, f"{base}/api/v1/servers")
        listed = json.loads(body)["servers"] if status == 200 else []
        report["servers"] = [{key: server[key] for key in ("name", "role", "state", "holds_vip")}
                             for server in listed]
    return report


def watch(base: str, certificate: str, interval: float, until_file: str) -> None:
    context = tls_context(certificate)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect())
    answering: bool | None = None
    while not os.path.exists(until_file):
        try:
            now_answering = get(opener, f"{base}/health")[0] == 200
        except (urllib.error.URLError, OSError):
            now_answering = False
        if now_answering != answering:
            answering = now_answering
            print(json.dumps({"monotonic": time.monotonic(), "answering": answering}), flush=True)
        time.sleep(interval)


def main() -> int:
    parser = argparse.ArgumentParser(prog="portal_probe.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="https://HOST:PORT of a portal")
    parser.add_argument("--certificate", required=True, help="the portal's certificate (PEM), trusted alone")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--servers", action="store_true", help="after the login, list the cluster's servers")
    parser.add_argument("--watch", action="store_true", help="ask /health until --until-file exists")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--until-file", default="")
    args = parser.parse_args()
    base = args.base.rstrip("/")
    if args.watch:
        if not args.until_file:
            parser.error("--watch needs --until-file")
        watch(base, args.certificate, args.interval, args.until_file)
        return 0
    try:
        print(json.dumps(probe(base, args.certificate, args.user, args.password, args.servers)))
    except (urllib.error.URLError, OSError) as exc:
        print(f"portal_probe.py: {base}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
