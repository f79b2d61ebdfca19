#!/usr/bin/env python3
"""Where a REGISTER's time goes in the Call Manager's sans-IO core, in process and on Redis.

It builds a `CallManager` core as the controller does (a Directory on a fresh SQLite
database of --users users, a NonceManager, an AuthFailureLimiter, and the location,
nonce-counts, auth failures and dialogs of `open_state_store`: the in-process store, then
Redis), and feeds it, as bytes, the two exchanges of a registration with digest auth, as
sipp's register_auth.xml sends them: REGISTER, 401, REGISTER with Authorization (computed
with `build_authorization`), 200; each user from an address of its own. Its clock runs at
--rate registrations a second: the transactions' timers fire (handle_timer) and
housekeeping runs once a simulated second, as in the controller. No socket, no event loop:
what is measured is the core, not the transport (bench/sip_rates.py measures the whole).

For each store it runs a warm-up, then --registrations registrations timed (wall time spent
in the core only: the phone's side, building the bytes and the digest, is outside), then as
many others under cProfile, and prints the microseconds per REGISTER (one registration is
two REGISTER transactions; both are counted in "per registration"), the top functions by
cumulative and by own time, and the share of the time spent in: parsing, digest, the state
store (Redis round trips), the transaction layer, serialization, the registrar, the
directory, and the rest. A function outside pbx_services (hashlib, redis-py, the socket
module, SQLAlchemy) counts for the pbx_services function that called it.

Run it with the Python that has pbx_services installed (`.venv/bin/python
bench/register_profile.py`); redis-server is started on a free port of 127.0.0.1 and
stopped by pid (--redis-url uses a running one instead: it must be empty, as the run
writes to it). See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchlib import (
    BenchError,
    Processes,
    Terminated,
    ignore_stop_signals,
    log,
    raise_on_stop_signals,
    require_tools,
    start_redis,
)

try:
    from pbx_services.callmanager.directory import Directory
    from pbx_services.callmanager.policy import AuthFailureLimiter
    from pbx_services.callmanager.registrar import RegistrarSettings
    from pbx_services.callmanager.service import CallManager
    from pbx_services.cluster.database import create_engine_for, session_factory, upgrade
    from pbx_services.cluster.state import StateStore, open_state_store
    from pbx_services.cluster.tenants import TenantService
    from pbx_services.cluster.users import UserService
    from pbx_services.sip.digest import DigestAlgorithm, DigestChallenge, NonceManager, build_authorization
    from pbx_services.sip.message import SipResponse, parse_message
except ImportError as exc:  # run with a Python that lacks the package
    sys.exit(f"register_profile.py: cannot import pbx_services ({exc}): run it with the venv's Python")

HOST = "127.0.0.1"
PBX = ("192.0.2.10", 5060)
DOMAIN = "pbx.local"
PASSWORD = "bench-secret"
USER_BASE = 100000
START = 1000.0
"""The core's clock (loop time) at the first registration."""
NONCE_TTL = 300.0
SECRET = bytes.fromhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")

# Where a function of pbx_services belongs, by its module (path under pbx_services/); in the
# SIP message modules, by its name: building bytes or text is serialization, the rest parsing.
CATEGORY_BY_MODULE = (
    ("cluster/state/", "state store"),
    ("sip/digest.py", "digest"),
    ("callmanager/auth.py", "digest"),
    ("sip/transaction.py", "transaction layer"),
    ("sip/events.py", "transaction layer"),
    ("sip/stack.py", "transaction layer"),
    ("runtime/timers.py", "transaction layer"),
    ("callmanager/registrar.py", "registrar"),
    ("callmanager/directory.py", "directory"),
    ("callmanager/policy.py", "auth failure policy"),
    ("sip/message.py", "parsing"),
    ("sip/headers.py", "parsing"),
    ("sip/uri.py", "parsing"),
)
SERIALIZING_NAMES = frozenset(
    {"serialize", "__str__", "start_line", "_format_params", "quote", "_with_body", "__repr__"}
)
CATEGORIES = (
    "parsing",
    "digest",
    "state store",
    "transaction layer",
    "serialization",
    "registrar",
    "directory",
    "auth failure policy",
    "other",
)
Func = tuple[str, int, str]
HARNESS = "register_profile.py"
"""This script's own functions (the closures that call the core) are left out of the lists."""


def category_of(func: Func) -> str | None:
    """The category of a pbx_services function; None for any other code."""
    path, _, name = func
    marker = path.rfind("pbx_services/")
    if marker < 0:
        return None
    module = path[marker + len("pbx_services/") :]
    if module.startswith("sip/") and name in SERIALIZING_NAMES:
        return "serialization"
    for prefix, category in CATEGORY_BY_MODULE:
        if module.startswith(prefix):
            return category
    return "other"


def short_name(func: Func) -> str:
    path, line, name = func
    marker = path.rfind("pbx_services/")
    if marker >= 0:
        path = path[marker:]
    elif path.startswith("~") or path == "":
        return name  # a built-in: "<method 'sendall' of '_socket.socket' objects>"
    else:
        path = "/".join(Path(path).parts[-2:])
    return f"{path}:{line} {name}"


# ---------------------------------------------------------------- attributing the time


def attribute(stats: dict[Func, Any]) -> dict[str, float]:
    """Own time (seconds) by category. A function outside pbx_services passes its own time
    to its callers (in proportion to the time each call edge spent in it), up to the first
    pbx_services function."""
    memo: dict[Func, dict[str, float]] = {}

    def shares(func: Func, seen: frozenset[Func]) -> dict[str, float]:
        category = category_of(func)
        if category is not None:
            return {category: 1.0}
        if func in memo:
            return memo[func]
        callers = stats.get(func, (0, 0, 0.0, 0.0, {}))[4]
        weights = {caller: edge[2] + edge[3] for caller, edge in callers.items() if caller not in seen}
        total = sum(weights.values())
        if not total:
            return {"other": 1.0}
        out: dict[str, float] = defaultdict(float)
        for caller, weight in weights.items():
            for category, part in shares(caller, seen | {func}).items():
                out[category] += part * weight / total
        memo[func] = dict(out)
        return memo[func]

    totals: dict[str, float] = defaultdict(float)
    for func, (_, _, own, _, _) in stats.items():
        if category_of(func) is not None:
            totals[category_of(func) or "other"] += own
            continue
        # Split the own time by calling edge: each edge's share goes to that caller's category.
        callers = stats[func][4]
        edge_total = sum(edge[2] for edge in callers.values())
        if not callers or not edge_total:
            for category, part in shares(func, frozenset()).items():
                totals[category] += own * part
            continue
        for caller, edge in callers.items():
            for category, part in shares(caller, frozenset({func})).items():
                totals[category] += own * (edge[2] / edge_total) * part
    return dict(totals)


# ---------------------------------------------------------------- the core and the phone


def make_core(engine: Any, state: StateStore) -> CallManager:
    """The core as CallManagerController builds it (pbx_services/callmanager/controller.py)."""
    directory = Directory(engine=engine, default_domain=DOMAIN)
    directory.tick(START)
    return CallManager(
        host=PBX[0],
        port=PBX[1],
        max_message_size=65535,
        directory=directory,
        nonces=NonceManager(SECRET, NONCE_TTL, counts=state.nonce_counts),
        limiter=AuthFailureLimiter(limit=5, window=60.0, block_seconds=600.0, store=state.auth_failures),
        registrar_settings=RegistrarSettings(
            min_expires=60, max_expires=3600, default_expires=3600, max_contacts=10
        ),
        algorithms=(DigestAlgorithm.MD5, DigestAlgorithm.SHA256),
        on_call_ended=lambda event: None,
        wall_offset=time.time() - START,
        location=state.location,
        dialogs=state.dialogs,
    )


def phone_address(index: int) -> tuple[str, int]:
    """An address of its own for each phone (10.0.0.0/8)."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}", 5060


def register_bytes(
    extension: str, source: tuple[str, int], call_id: str, cseq: int, authorization: str = ""
) -> bytes:
    """A REGISTER as sipp's register_auth.xml sends it."""
    ip, port = source
    lines = [
        f"REGISTER sip:{DOMAIN} SIP/2.0",
        f"Via: SIP/2.0/UDP {ip}:{port};rport;branch=z9hG4bK{secrets.token_hex(8)}",
        "Max-Forwards: 70",
        f"From: <sip:{extension}@{DOMAIN}>;tag={call_id[:10]}",
        f"To: <sip:{extension}@{DOMAIN}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{extension}@{ip}:{port};transport=UDP>",
        "Expires: 3600",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    lines += ["User-Agent: register_profile", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


class Driver:
    """Runs registrations through the core on a simulated clock, timing (and profiling) only
    the core's own work."""

    def __init__(self, core: CallManager, rate: float) -> None:
        self.core = core
        self.rate = rate
        self.next_housekeeping = START + 1.0
        self.core_seconds = 0.0
        self.core_cpu_seconds = 0.0

    def _core(self, profiler: cProfile.Profile | None, work: Any) -> Any:
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        try:
            return work()
        finally:
            if profiler is not None:
                profiler.disable()
            self.core_seconds += time.perf_counter() - started
            self.core_cpu_seconds += time.process_time() - cpu_started

    def _send(
        self, data: bytes, source: tuple[str, int], now: float, profiler: cProfile.Profile | None
    ) -> bytes:
        def work() -> list[Any]:
            self.core.receive(data, source, "UDP", now)
            return self.core.take_transmits()

        transmits = self._core(profiler, work)
        replies = [t.data for t in transmits if t.destination == source]
        if len(replies) != 1:
            raise BenchError(f"expected one answer to {source}, got {len(replies)}")
        return bytes(replies[0])

    def _timers(self, now: float, profiler: cProfile.Profile | None) -> None:
        def work() -> None:
            deadline = self.core.next_timer()
            if deadline is not None and deadline <= now:
                self.core.handle_timer(now)
                self.core.take_transmits()
            if now >= self.next_housekeeping:
                self.core.housekeeping(now)
                self.next_housekeeping += 1.0

        self._core(profiler, work)

    def register(self, index: int, seq: int, profiler: cProfile.Profile | None) -> None:
        """Registration `seq` (the clock's count) of user USER_BASE + index."""
        now = START + seq / self.rate
        self._timers(now, profiler)
        extension = str(USER_BASE + index)
        source = phone_address(index)
        call_id = f"{secrets.token_hex(8)}@{source[0]}"
        challenge_response = parse_message(
            self._send(register_bytes(extension, source, call_id, 1), source, now, profiler)
        )
        if not isinstance(challenge_response, SipResponse) or challenge_response.status_code != 401:
            raise BenchError(f"{extension}: expected 401, got {challenge_response!r}")
        challenge = next(
            c
            for c in map(DigestChallenge.parse, challenge_response.headers.get_all("WWW-Authenticate"))
            if c.algorithm is DigestAlgorithm.MD5
        )
        # sipp's digest uri is its remote address, not the Request-URI (tests/data/sipp/README.md).
        authorization = build_authorization(
            challenge,
            username=extension,
            password=PASSWORD,
            method="REGISTER",
            uri=f"sip:{PBX[0]}:{PBX[1]}",
            cnonce=secrets.token_hex(8),
            nc=1,
        )
        answer = parse_message(
            self._send(register_bytes(extension, source, call_id, 2, authorization), source, now, profiler)
        )
        if not isinstance(answer, SipResponse) or answer.status_code != 200:
            raise BenchError(f"{extension}: expected 200, got {answer!r}")


# ---------------------------------------------------------------- one store


def users_database(workdir: Path, users: int) -> Any:
    url = f"sqlite:///{workdir / 'pbx.sqlite3'}"
    upgrade(url)
    engine = create_engine_for(url)
    sessions = session_factory(engine)
    TenantService(sessions=sessions).ensure_tenant(DOMAIN)
    users_csv = workdir / "users.csv"
    with open(users_csv, "w") as f:
        f.write("extension,password\n")
        f.writelines(f"{USER_BASE + i},{PASSWORD}\n" for i in range(users))
    UserService(sessions=sessions, default_domain=DOMAIN).import_csv(users_csv)
    return engine


def profile_store(name: str, url: str | None, engine: Any, args: argparse.Namespace) -> dict[str, Any]:
    state = open_state_store(url, nonce_ttl=NONCE_TTL)
    try:
        driver = Driver(make_core(engine, state), args.rate)
        users = iter(range(args.warmup + 2 * args.registrations))
        seq = iter(range(10**9))

        def run(count: int, profiler: cProfile.Profile | None) -> tuple[float, float]:
            driver.core_seconds = driver.core_cpu_seconds = 0.0
            for _ in range(count):
                driver.register(next(users), next(seq), profiler)
            return driver.core_seconds, driver.core_cpu_seconds

        log(f"{name}: warm-up, {args.warmup} registrations")
        run(args.warmup, None)
        log(f"{name}: {args.registrations} registrations timed")
        timed, timed_cpu = run(args.registrations, None)
        log(f"{name}: {args.registrations} registrations under cProfile")
        profiler = cProfile.Profile()
        profiled, _ = run(args.registrations, profiler)
    finally:
        state.close()
    stats: dict[Func, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    n = args.registrations
    by_category = attribute(stats)
    total = sum(by_category.values())

    def rows(key: int, top: int) -> list[dict[str, Any]]:
        ours = [(func, row) for func, row in stats.items() if not func[0].endswith(HARNESS)]
        ranked = sorted(ours, key=lambda item: item[1][key], reverse=True)[:top]
        return [
            {
                "function": short_name(func),
                "calls_per_registration": round(nc / n, 2),
                "own_us": round(own * 1e6 / n, 1),
                "cumulative_us": round(cum * 1e6 / n, 1),
            }
            for func, (_, nc, own, cum, _) in ranked
        ]

    round_trips = sum(
        nc
        for func, (_, nc, _, _, _) in stats.items()
        if func[2]
        in ("<method 'sendall' of '_socket.socket' objects>", "<method 'send' of '_socket.socket' objects>")
    )
    return {
        "store": name,
        "registrations": n,
        "us_per_registration": round(timed * 1e6 / n, 1),
        "cpu_us_per_registration": round(timed_cpu * 1e6 / n, 1),
        "us_per_register_request": round(timed * 1e6 / n / 2, 1),
        "us_per_registration_profiled": round(profiled * 1e6 / n, 1),
        "socket_sends_per_registration": round(round_trips / n, 2),
        "shares": {c: round(by_category.get(c, 0.0) / total, 3) for c in CATEGORIES} if total else {},
        "us_by_category": {c: round(by_category.get(c, 0.0) * 1e6 / n, 1) for c in CATEGORIES},
        "top_cumulative": rows(3, args.top),
        "top_own": rows(2, args.top),
    }


# ---------------------------------------------------------------- Redis


def start_redis_store(procs: Processes, binary: str, workdir: Path) -> str:
    redis = start_redis(procs, binary, HOST, workdir)
    log(f"redis-server on {HOST}:{redis.port} (pid {redis.proc.pid})")
    return f"redis://{HOST}:{redis.port}/0"


# ---------------------------------------------------------------- report


def print_report(results: list[dict[str, Any]]) -> None:
    for result in results:
        print(
            f"\n== {result['store']}: {result['us_per_registration']:.0f} µs per registration "
            f"(2 REGISTER transactions: {result['us_per_register_request']:.0f} µs per REGISTER; "
            f"CPU {result['cpu_us_per_registration']:.0f} µs), "
            f"{result['us_per_registration_profiled']:.0f} µs under cProfile; "
            f"{result['socket_sends_per_registration']} socket sends (Redis round trips) per registration"
        )
        for title, key in (("by cumulative time", "top_cumulative"), ("by own time", "top_own")):
            print(f"\ntop functions {title} (per registration):")
            print(f"{'cumulative µs':>14} {'own µs':>8} {'calls':>6}  function")
            for row in result[key]:
                print(
                    f"{row['cumulative_us']:>14.1f} {row['own_us']:>8.1f} "
                    f"{row['calls_per_registration']:>6.2f}  {row['function']}"
                )
    print("\nshare of the core's time per registration (under cProfile; µs per registration in brackets):")
    width = max(len(c) for c in CATEGORIES)
    print(f"{'':{width}}" + "".join(f"  {r['store']:>20}" for r in results))
    for category in CATEGORIES:
        cells = "".join(
            f"  {r['shares'].get(category, 0) * 100:>8.1f}% ({r['us_by_category'][category]:>7.1f})"
            for r in results
        )
        print(f"{category:{width}}{cells}")
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Profile a REGISTER with digest auth in the Call Manager's sans-IO core, "
        "with the in-process state store and with Redis (see bench/README.md)"
    )
    p.add_argument(
        "--registrations", type=int, default=5000, help="registrations timed, and as many profiled"
    )
    p.add_argument(
        "--warmup", type=int, default=500, help="registrations before the measured ones (default: 500)"
    )
    p.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="registrations per second of the core's clock (default: 1000)",
    )
    p.add_argument(
        "--stores",
        default="memory,redis",
        help="comma-separated: memory (in-process), redis (default: both)",
    )
    p.add_argument("--redis-url", default=None, help="an empty Redis to use instead of starting redis-server")
    p.add_argument("--redis-bin", default="redis-server")
    p.add_argument(
        "--top", type=int, default=20, help="functions listed by cumulative and by own time (default: 20)"
    )
    p.add_argument("--output", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not args.stores or set(args.stores) - {"memory", "redis"}:
        p.error("--stores takes memory and/or redis")
    if args.registrations < 1 or args.warmup < 0:
        p.error("--registrations must be positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_stop_signals()
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="register-profile-"))
    results: list[dict[str, Any]] = []
    exit_code = 0
    try:
        users = args.warmup + 2 * args.registrations
        log(f"a SQLite database of {users} users in {workdir}")
        engine = users_database(workdir, users)
        for store in args.stores:
            url = None
            if store == "redis":
                if args.redis_url:
                    url = args.redis_url
                else:
                    require_tools([args.redis_bin])
                    url = start_redis_store(procs, args.redis_bin, workdir)
            results.append(profile_store("in-process" if url is None else "redis", url, engine, args))
            procs.stop_all()
        engine.dispose()
    except BenchError as exc:
        log(f"error: {exc}")
        exit_code = 2
    except (KeyboardInterrupt, Terminated) as exc:
        log(f"interrupted ({type(exc).__name__} {exc}): stopping everything")
        exit_code = 130
    finally:
        ignore_stop_signals()
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        if results:
            print_report(results)
        if args.output is not None:
            args.output.write_text(
                json.dumps({"settings": vars(args), "results": results}, indent=2, default=str) + "\n"
            )
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
