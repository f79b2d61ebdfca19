"""The state store in Redis (redis-py), standalone or behind Sentinel, shared by every Call Manager.

URLs: `redis://[:password@]host:port/db`, `rediss://...`, `unix:///path?db=N`, and
`redis+sentinel://[:password@]host1:26379,host2:26379/master-name/db` (the client follows the
master Sentinel promotes). Calls are synchronous with a short timeout: the Call Manager's core
is sans-IO and a Redis round trip on the local network costs tens of microseconds. When Redis
cannot be reached, every call fails fast with `StateStoreUnavailable` for `RETRY_AFTER`
seconds (no connect timeout per request while it is away), then one call tries again; the
outage and the recovery are logged once each.

Keys (all under `pbx:`), each with a TTL that follows what it holds:
- `loc:<aor>` hash contact -> binding (JSON), expiring with its last binding; `loc:expiry`
  sorted set "<aor>\\n<contact>" by expiry time, for the count and the purge.
- `nc:<nonce>` the last nonce-count accepted, expiring with the nonce.
- `fail:<ip>` failures in the current window; `block:<ip>` while blocked; `blocked` sorted set.
- `lines:<owner>` hash "<realm>/<ext>" -> that user's dialogs on that worker (JSON), expiring;
  `lines` sorted set of the owners by the wall-clock end of their lines.
- `calls:<key>` sorted set of the calls counted under a limit's key, by expiry time (ms).
- `call:<key>` a call record (JSON); `dlg:<call-id>:<tag>` -> key, per leg; `owner:<owner>` set of keys;
  `owners` set of the owners with records; `alive:<owner>` while that owner holds its calls.
A value that does not parse is logged with its key and skipped, never a crash.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from ...sip.digest import NonceStatus
from ..redis_bus import RedisStreamBus
from . import StateStore
from .agents import AgentRecord, Transition
from .call_counts import CountedCall
from .dialogs import CallRecord
from .errors import StateStoreUnavailable
from .location import Binding, by_preference

log = logging.getLogger(__name__)

PREFIX = "pbx:"
LINES_MARKER = "-"
"""A field of every worker's lines hash, no line's key ("REALM/EXT"): the hash exists while the
worker's publication is live, lines or none."""
RETRY_AFTER = 1.0
"""Seconds during which calls fail fast after Redis was found unreachable."""
PURGE_BATCH = 1000
BLOCK_CHECK_CACHE = 1.0
"""Seconds a worker goes by Redis's last answer on whether a source is blocked."""
BLOCK_CHECK_CACHE_SIZE = 100_000

T = TypeVar("T")

_ADVANCE_NONCE = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_PURGE_LOCATION = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(members) do
  local split = string.find(member, '\\n', 1, true)
  if split then
    redis.call('HDEL', ARGV[2] .. string.sub(member, 1, split - 1), string.sub(member, split + 1))
  end
  redis.call('ZREM', KEYS[1], member)
end
return #members
"""


class RedisConnection:
    """One redis-py client with the fail-fast rule above; every store below goes through `call`."""

    def __init__(self, client: redis.Redis, description: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.description = description
        self._clock = clock
        self._down_until = float("-inf")
        self._down = False

    def call(self, operation: Callable[[redis.Redis], T]) -> T:
        if self._down and self._clock() < self._down_until:
            raise StateStoreUnavailable(f"Redis at {self.description} is unreachable")
        try:
            result = operation(self.client)
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError) as exc:
            if not self._down:
                log.error("state store: Redis at %s is unreachable (%s); retrying every %.0f s",
                          self.description, exc, RETRY_AFTER)
            self._down = True
            self._down_until = self._clock() + RETRY_AFTER
            raise StateStoreUnavailable(f"Redis at {self.description} is unreachable: {exc}") from None
        if self._down:
            log.warning("state store: Redis at %s is back", self.description)
            self._down = False
        return result

    def close(self) -> None:
        self.client.close()


def _decode_json(key: str, raw: bytes | str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        log.error("state store: skipped the value of %s: not JSON: %.80r", key, raw)
        return None


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


# -- location -------------------------------------------------------------------------------


def _encode_binding(binding: Binding) -> str:
    return json.dumps([binding.contact, binding.expires_at, binding.call_id, binding.cseq,
                       binding.source[0], binding.source[1], binding.transport, binding.refreshed_at,
                       binding.q, binding.user_agent, binding.instance_id], separators=(",", ":"))


def _decode_binding(key: str, aor: str, raw: bytes | str) -> Binding | None:
    fields = _decode_json(key, raw)
    if fields is None:
        return None
    try:
        (contact, expires_at, call_id, cseq, host, port, transport, refreshed_at, q, user_agent,
         instance_id) = fields
        return Binding(aor=aor, contact=str(contact), expires_at=float(expires_at), call_id=str(call_id),
                       cseq=int(cseq), source=(str(host), int(port)), transport=str(transport),
                       refreshed_at=float(refreshed_at), q=float(q), user_agent=str(user_agent),
                       instance_id=None if instance_id is None else str(instance_id))
    except (TypeError, ValueError):
        log.error("state store: skipped a binding in %s: not a binding: %.80r", key, raw)
        return None


class RedisLocation:
    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._expiry_key = PREFIX + "loc:expiry"
        self._purge = connection.client.register_script(_PURGE_LOCATION)

    def _key(self, aor: str) -> str:
        return f"{PREFIX}loc:{aor}"

    def lookup(self, aor: str, now: float) -> list[Binding]:
        key = self._key(aor)
        return self._live(key, aor, self._redis.call(lambda r: r.hgetall(key)), now)

    def update(self, aor: str, *, save: Sequence[Binding] = (), remove: Sequence[str] = (),
               now: float) -> list[Binding]:
        key = self._key(aor)

        def write(client: redis.Redis) -> Any:
            pipe = client.pipeline(transaction=True)
            if remove:
                pipe.hdel(key, *remove)
                pipe.zrem(self._expiry_key, *(f"{aor}\n{contact}" for contact in remove))
            if save:
                pipe.hset(key, mapping={b.contact: _encode_binding(b) for b in save})
                pipe.zadd(self._expiry_key, {f"{aor}\n{b.contact}": b.expires_at for b in save})
                latest = int(max(b.expires_at for b in save) * 1000) + 1
                # The hash lives as long as its longest binding: a TTL set if it has none, moved if later.
                pipe.pexpireat(key, latest, nx=True)
                pipe.pexpireat(key, latest, gt=True)
            pipe.hgetall(key)
            return pipe.execute()[-1]

        return self._live(key, aor, self._redis.call(write), now)

    def _live(self, key: str, aor: str, raw: dict[Any, Any], now: float) -> list[Binding]:
        bindings = [b for value in raw.values() if (b := _decode_binding(key, aor, value)) is not None]
        return by_preference([b for b in bindings if b.expires_at > now])

    def binding_count(self) -> int:
        return int(self._redis.call(lambda r: r.zcard(self._expiry_key)))

    def purge(self, now: float) -> int:
        purged = self._redis.call(lambda r: self._purge(keys=[self._expiry_key],
                                                        args=[now, PREFIX + "loc:", PURGE_BATCH],
                                                        client=r))
        return int(purged)


# -- nonce counts ---------------------------------------------------------------------------


class RedisNonceCounts:
    def __init__(self, connection: RedisConnection, ttl: float) -> None:
        self._redis = connection
        self._ttl = ttl
        self._advance = connection.client.register_script(_ADVANCE_NONCE)

    def advance(self, nonce: str, nc: int, issued: float, now: float) -> NonceStatus:
        lifetime_ms = max(1, int((issued + self._ttl - now) * 1000) + 1000)
        advanced = self._redis.call(lambda r: self._advance(keys=[f"{PREFIX}nc:{nonce}"],
                                                            args=[nc, lifetime_ms], client=r))
        return NonceStatus.VALID if advanced == 1 else NonceStatus.REPLAY

    def handle_timer(self, now: float) -> None:
        """Nothing to do: Redis expires the counts itself."""


# -- authentication failures ----------------------------------------------------------------


class RedisAuthFailures:
    """Failures are counted in a fixed window that starts with a source's first failure (a
    sliding window would cost a sorted set per source): within one window, `limit` failures
    block, as in memory; spread across two windows, up to 2 x limit - 2 may go unblocked.

    Whether a source is blocked is asked of Redis at most once per `BLOCK_CHECK_CACHE` seconds
    per source: a phone's REGISTER and its answer to the challenge cost one round trip, not
    two, and a block made by another worker is seen here within that time (a block made here
    at once).

    `namespace` keeps another counter's keys apart: the portal's logins (`portal:`) are not
    SIP's digest authentications."""

    def __init__(self, connection: RedisConnection, *, namespace: str = "") -> None:
        self._redis = connection
        self._prefix = PREFIX + namespace
        self._blocked_key = self._prefix + "blocked"
        self._checked: dict[str, tuple[float, bool]] = {}
        """ip -> (when Redis was asked, whether it was blocked)."""

    def blocked(self, ip: str, now: float) -> bool:
        checked = self._checked.get(ip)
        if checked is not None and now - checked[0] < BLOCK_CHECK_CACHE:
            return checked[1]
        blocked = bool(self._redis.call(lambda r: r.exists(f"{self._prefix}block:{ip}")))
        if len(self._checked) >= BLOCK_CHECK_CACHE_SIZE:
            self._checked.clear()  # a flood of spoofed sources must not grow it without bound
        self._checked[ip] = (now, blocked)
        return blocked

    def add_failure(self, ip: str, now: float, window: float) -> int:
        key = f"{self._prefix}fail:{ip}"

        def count(client: redis.Redis) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.pexpire(key, int(window * 1000), nx=True)
            return int(pipe.execute()[0])

        return self._redis.call(count)

    def block(self, ip: str, now: float, seconds: float) -> None:
        until = now + seconds  # on the callers' clock, as `blocked_count` and `purge` ask

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=True)
            # The key's lifetime is Redis's own: a duration, not an instant on our clock.
            pipe.set(f"{self._prefix}block:{ip}", 1, px=max(1, int(seconds * 1000)))
            pipe.delete(f"{self._prefix}fail:{ip}")
            pipe.zadd(self._blocked_key, {ip: until})
            pipe.execute()

        self._redis.call(write)
        self._checked[ip] = (until - BLOCK_CHECK_CACHE, True)  # blocked here: known until it ends

    def blocked_count(self, now: float) -> int:
        return int(self._redis.call(lambda r: r.zcount(self._blocked_key, f"({now}", "+inf")))

    def purge(self, now: float, window: float) -> None:
        self._checked = {ip: checked for ip, checked in self._checked.items()
                         if now - checked[0] < BLOCK_CHECK_CACHE}
        self._redis.call(lambda r: r.zremrangebyscore(self._blocked_key, "-inf", now))


# -- calls ----------------------------------------------------------------------------------


_SAVE_CALL = """
-- KEYS: call record, its owner's set, the owners set, then each leg's dialog key.
-- ARGV: record JSON, TTL in ms, owner, expected current owner ('' for none), record key.
if ARGV[4] ~= '' then
  local current = redis.call('GET', KEYS[1])
  if not current then return 0 end
  local ok, decoded = pcall(cjson.decode, current)
  if not ok or type(decoded) ~= 'table' or decoded['owner'] ~= ARGV[4] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 4, #KEYS do redis.call('SET', KEYS[i], ARGV[5], 'PX', ARGV[2]) end
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""


class RedisDialogs:
    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._owners_key = PREFIX + "owners"
        self._save = connection.client.register_script(_SAVE_CALL)

    def save(self, record: CallRecord, *, ttl: float, if_owner: str | None = None) -> bool:
        value = json.dumps({"owner": record.owner, "dialogs": record.dialogs, "data": record.data},
                           separators=(",", ":"))
        keys = [f"{PREFIX}call:{record.key}", f"{PREFIX}owner:{record.owner}", self._owners_key,
                *(f"{PREFIX}dlg:{call_id}:{tag}" for call_id, tag in record.dialogs)]
        args: list[str | int] = [value, max(1, int(ttl * 1000)), record.owner, if_owner or "", record.key]
        return bool(self._redis.call(lambda r: self._save(keys=keys, args=args, client=r)))

    def find(self, call_id: str, local_tag: str) -> CallRecord | None:
        key = self._redis.call(lambda r: r.get(f"{PREFIX}dlg:{call_id}:{local_tag}"))
        if key is None:
            return None
        return self._load(_text(key))

    def owned_by(self, owner: str) -> list[CallRecord]:
        owner_key = f"{PREFIX}owner:{owner}"
        keys = sorted(_text(k) for k in self._redis.call(lambda r: r.smembers(owner_key)))
        if not keys:
            return []
        values = self._redis.call(lambda r: r.mget([f"{PREFIX}call:{k}" for k in keys]))
        records, stale = [], []
        for key, raw in zip(keys, values, strict=True):
            record = self._parse(key, raw)
            if record is None or record.owner != owner:
                stale.append(key)  # ended, expired, or taken over by another worker
            else:
                records.append(record)
        if stale:
            self._redis.call(lambda r: r.srem(owner_key, *stale))
        return records

    def delete(self, record: CallRecord) -> None:
        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.delete(f"{PREFIX}call:{record.key}",
                        *(f"{PREFIX}dlg:{call_id}:{tag}" for call_id, tag in record.dialogs))
            pipe.srem(f"{PREFIX}owner:{record.owner}", record.key)
            pipe.execute()

        self._redis.call(write)

    def owners(self) -> list[str]:
        owners = sorted(_text(o) for o in self._redis.call(lambda r: r.smembers(self._owners_key)))
        if not owners:
            return []

        def check(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for owner in owners:
                pipe.exists(f"{PREFIX}owner:{owner}")
            return pipe.execute()

        present = self._redis.call(check)
        gone = [owner for owner, exists in zip(owners, present, strict=True) if not exists]
        if gone:  # every record of theirs ended, lapsed or was taken over
            self._redis.call(lambda r: r.srem(self._owners_key, *gone))
        return [owner for owner in owners if owner not in gone]

    def mark_alive(self, owner: str, *, ttl: float, now: float) -> None:
        self._redis.call(lambda r: r.set(f"{PREFIX}alive:{owner}", 1, px=max(1, int(ttl * 1000))))

    def mark_gone(self, owner: str) -> None:
        self._redis.call(lambda r: r.delete(f"{PREFIX}alive:{owner}"))

    def alive(self, owners: list[str], now: float) -> set[str]:
        if not owners:
            return set()
        flags = self._redis.call(lambda r: r.mget([f"{PREFIX}alive:{o}" for o in owners]))
        return {owner for owner, flag in zip(owners, flags, strict=True) if flag is not None}

    def _load(self, key: str) -> CallRecord | None:
        return self._parse(key, self._redis.call(lambda r: r.get(f"{PREFIX}call:{key}")))

    def _parse(self, key: str, raw: bytes | str | None) -> CallRecord | None:
        value = _decode_json(f"{PREFIX}call:{key}", raw)
        if value is None:
            return None
        try:
            return CallRecord(key=key, owner=str(value["owner"]),
                              dialogs=tuple((str(c), str(t)) for c, t in value["dialogs"]),
                              data=dict(value["data"]))
        except (KeyError, TypeError, ValueError):
            log.error("state store: skipped %scall:%s: not a call record", PREFIX, key)
            return None


# -- opening --------------------------------------------------------------------------------


CONNECT_TIMEOUT = 0.1
"""Seconds a connection attempt may take (at most the call timeout). On the service network a
connection takes well under a millisecond; a host that is gone (no RST, only silence) must not
stand the Call Manager's loop still for the whole call timeout at every attempt, once a second,
while Sentinel promotes another (measured in the lab: 0.4 s of unanswered SIP every 1.5 s)."""


def _no_retry() -> Retry:
    # redis-py retries a failed command 10 times with a backoff of up to 10 s by default: a
    # Call Manager's loop would stand still that long whenever a Redis host is unreachable.
    # RedisConnection fails fast instead and tries again a second later.
    return Retry(NoBackoff(), 0)


def redis_client(url: str, *, timeout: float) -> tuple[redis.Redis, str]:
    """A client for `url` and a description of it without the password; ValueError if malformed."""
    parts = urlsplit(url)
    connect_timeout = min(timeout, CONNECT_TIMEOUT)
    if parts.scheme != "redis+sentinel":
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout,
                                      retry=_no_retry())
        return client, _without_password(url)
    password = unquote(parts.password) if parts.password else None
    hosts = []
    for item in (parts.netloc.rsplit("@", 1)[-1]).split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address {item!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("no master name: redis+sentinel://host:port,.../MASTER-NAME/DB")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"path {parts.path!r} is not /MASTER-NAME or /MASTER-NAME/DB")
    # The Sentinels ask for the same password as Redis (the role redis sets both).
    sentinel = Sentinel(hosts, socket_timeout=timeout, socket_connect_timeout=connect_timeout,
                        sentinel_kwargs={"password": password, "socket_timeout": timeout,
                                         "socket_connect_timeout": connect_timeout, "retry": _no_retry()})
    client = sentinel.master_for(path[0], db=int(path[1]) if len(path) == 2 else 0, password=password,
                                 socket_timeout=timeout, socket_connect_timeout=connect_timeout,
                                 retry=_no_retry())
    return client, _without_password(url)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


_MOVE_HOME = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current == false and ARGV[2] == '') or current == ARGV[2] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    return ARGV[3]
end
return current
"""


class RedisHomes:
    """Homes in one Redis hash, moved by a compare-and-set script."""

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._key = PREFIX + "homes"
        self._move = connection.client.register_script(_MOVE_HOME)

    def home(self, key: str) -> str | None:
        value = self._redis.call(lambda r: r.hget(self._key, key))
        return value.decode() if isinstance(value, bytes) else value

    def move(self, key: str, expected: str | None, home: str) -> str:
        value = self._redis.call(lambda r: self._move(keys=[self._key], args=[key, expected or "", home],
                                                      client=r))
        return value.decode() if isinstance(value, bytes) else str(value)


class RedisAgents:
    """Agent records as JSON strings, changed in WATCH/MULTI transactions (retried on a race)."""

    RETENTION = 30 * 86400
    """Seconds an agent's record (its counts for the strategies) outlives its last change."""

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection

    @staticmethod
    def _key(key: str) -> str:
        return f"{PREFIX}agent:{key}"

    def records(self, keys: Sequence[str]) -> dict[str, AgentRecord]:
        if not keys:
            return {}
        values: list[Any] = self._redis.call(lambda r: r.mget([self._key(key) for key in keys]))
        return {key: AgentRecord.from_json(key, value) if value is not None else AgentRecord()
                for key, value in zip(keys, values, strict=True)}

    def change(self, key: str, transition: Transition) -> AgentRecord | None:
        name = self._key(key)
        changed: list[AgentRecord | None] = []

        def attempt(pipe: Any) -> None:
            raw = pipe.get(name)
            changed[:] = [transition(AgentRecord.from_json(key, raw) if raw is not None else AgentRecord())]
            if changed[0] is not None:
                pipe.multi()
                pipe.set(name, changed[0].to_json(), ex=self.RETENTION)

        self._redis.call(lambda r: r.transaction(attempt, name))
        return changed[0]


_HOLD_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""


class RedisLeases:
    """Leases as keys holding their owner, expiring with Redis's clock (PX), taken or renewed by a script."""

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._hold = connection.client.register_script(_HOLD_LEASE)

    def hold(self, key: str, owner: str, ttl: float, now: float) -> bool:
        held = self._redis.call(lambda r: self._hold(keys=[f"{PREFIX}lease:{key}"],
                                                      args=[owner, max(1, round(ttl * 1000))], client=r))
        return bool(held)


_COUNT_CALLS = """
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t[1] * 1000 + math.floor(t[2] / 1000))
return redis.call('ZCARD', KEYS[1])
"""

_ADD_CALLS = """
local t = redis.call('TIME')
local expiry = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return #ARGV - 1
"""


class RedisCallCounts:
    """The calls counted under each key in a sorted set by expiry, on Redis's clock."""

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._count = connection.client.register_script(_COUNT_CALLS)
        self._add = connection.client.register_script(_ADD_CALLS)

    def count(self, key: str, now: float) -> int:
        return int(self._redis.call(lambda r: self._count(keys=[f"{PREFIX}calls:{key}"], client=r)))

    def add(self, calls: Iterable[CountedCall], ttl: float, now: float) -> None:
        by_key: dict[str, list[str]] = {}
        for keys, call in calls:
            for key in keys:
                by_key.setdefault(key, []).append(call)
        if not by_key:
            return
        ttl_ms = max(1, round(ttl * 1000))

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for key, members in by_key.items():
                self._add(keys=[f"{PREFIX}calls:{key}"], args=[ttl_ms, *members], client=pipe)
            pipe.execute()

        self._redis.call(write)

    def remove(self, keys: Sequence[str], call: str) -> None:
        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.zrem(f"{PREFIX}calls:{key}", call)
            pipe.execute()

        self._redis.call(write)


class RedisLines:
    """Each worker's lines in a hash of its own (with a marker field, so that a worker with no
    lines still has one), replaced in one transaction at each full publication, changed in one
    at each update."""

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection

    def publish(self, owner: str, lines: Mapping[str, str], ttl: float, now: float) -> None:
        key, ttl_ms = f"{PREFIX}lines:{owner}", max(1, round(ttl * 1000))

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=dict[Any, Any]({LINES_MARKER: "", **lines}))
            pipe.pexpire(key, ttl_ms)
            pipe.zadd(f"{PREFIX}lines", {owner: now + ttl})
            pipe.zremrangebyscore(f"{PREFIX}lines", "-inf", now - 3600)
            pipe.execute()

        self._redis.call(write)

    def update(self, owner: str, changed: Mapping[str, str], ended: Collection[str], ttl: float,
               now: float) -> bool:
        key, ttl_ms = f"{PREFIX}lines:{owner}", max(1, round(ttl * 1000))

        def write(client: redis.Redis) -> bool:
            pipe = client.pipeline(transaction=True)
            pipe.exists(key)  # 0: the hash was gone, and the changes alone are not enough
            if changed:
                pipe.hset(key, mapping=dict[Any, Any](changed))
            if ended:
                pipe.hdel(key, *ended)
            pipe.pexpire(key, ttl_ms)
            pipe.zadd(f"{PREFIX}lines", {owner: now + ttl})
            return bool(pipe.execute()[0])

        return self._redis.call(write)

    def read(self, keys: Collection[str], now: float) -> dict[str, list[str]]:
        if not keys:
            return {}
        wanted = list(keys)

        def fetch(client: redis.Redis) -> list[Any]:
            owners: list[Any] = list(client.zrangebyscore(f"{PREFIX}lines", now, "+inf"))
            pipe = client.pipeline(transaction=False)
            for owner in owners:
                pipe.hmget(f"{PREFIX}lines:{_text(owner)}", wanted)
            return list(pipe.execute())

        found: dict[str, list[str]] = {}
        for values in self._redis.call(fetch):
            for key, value in zip(wanted, values, strict=True):
                if value is not None and key != LINES_MARKER:
                    found.setdefault(key, []).append(_text(value))
        return found


def open_redis_state(url: str, *, nonce_ttl: float, timeout: float) -> StateStore:
    try:
        client, description = redis_client(url, timeout=timeout)
    except ValueError as exc:
        raise StateStoreUnavailable(f"not a Redis URL: {exc}") from None
    connection = RedisConnection(client, description)
    try:
        connection.call(lambda r: r.ping())
    except redis.RedisError as exc:
        # A wrong password, a database number Redis does not have...
        raise StateStoreUnavailable(f"Redis at {description} refused us: {exc}") from None

    def publish_event(event: object) -> bool:
        try:
            connection.call(lambda client: RedisStreamBus(client).publish(event))
        except (StateStoreUnavailable, redis.RedisError) as exc:
            log.error("event %s not put on the bus yet: %s", type(event).__name__, exc)
            return False
        return True

    return StateStore(location=RedisLocation(connection),
                      nonce_counts=RedisNonceCounts(connection, nonce_ttl),
                      auth_failures=RedisAuthFailures(connection), dialogs=RedisDialogs(connection),
                      homes=RedisHomes(connection), agents=RedisAgents(connection),
                      leases=RedisLeases(connection), call_counts=RedisCallCounts(connection),
                      lines=RedisLines(connection),
                      description=description,
                      closer=connection.close,
                      publish_event=publish_event)
