"""Queue service: the call queues of the tenants, their agents (members) and the agents' skills
(see `models.queue` for what a queue does with its callers).

Everything a queue names is checked when it is saved: its number is free in the tenant's
dial plan, its strategy is one the queue servers know (`queue.strategies`), every member is
a user of the tenant, its overflow reaches something and its music prompt exists. Agents log
in and out, pause and unpause here (`pbx agent`, the queue servers' feature codes), so that a
restart of any server loses none of it; what an agent is doing right now (ringing, on a call,
in wrap-up) is the queue servers' business, in the state store.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.destinations import DestinationKind, parse_destination_for
from pbx_services.cluster.models import AgentSkill, CallQueue, QueueMember, Tenant, User
from pbx_services.cluster.models.queue import PAUSE_REASON_MAX_LENGTH, SKILL_MAX_LENGTH, SKILLS_MAX_LENGTH
from pbx_services.cluster.numbering import check_destination, check_unrouted, find_to_replace
from pbx_services.cluster.prompts import PromptDao
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range, validate_extension
from pbx_services.queue.strategies import parse_strategy

AGENT_FEATURE_CODES = {"*45": "login", "*46": "logout", "*47": "pause", "*48": "unpause"}
"""What an agent dials to log in to (out of) its dynamic queues, or to pause (unpause) in all of
them: numbers of every tenant's dial plan that the Call Managers send to a queue server."""
QUEUE_NAME_MAX_LENGTH = 64
MAX_MEMBERS = 1000
WAIT_RANGE = range(0, 86401)
"""Seconds: the maximum wait (0: none)."""
LENGTH_RANGE = range(0, 100_001)
WRAP_UP_RANGE = range(0, 3601)
RING_TIMEOUT_RANGE = range(5, 301)
SERVICE_LEVEL_RANGE = range(1, 3601)
POSITION_INTERVAL_RANGE = range(0, 3601)
MISSES_RANGE = range(0, 101)
PENALTY_RANGE = range(0, 100)
LEVEL_RANGE = range(1, 11)

_SKILL_RE = re.compile(rf"[a-z0-9_-]{{1,{SKILL_MAX_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class MemberInfo:
    extension: str
    penalty: int
    dynamic: bool
    logged_in: bool
    paused: bool
    pause_reason: str | None
    skills: Mapping[str, int] = field(default_factory=dict)
    """The agent's skills (skill -> level), what the queue's `skills` are matched against."""


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue as the queue servers run it; members in their configured order."""

    tenant_domain: str
    number: str
    name: str | None
    strategy: str
    skills: Mapping[str, int]
    """Skill -> the least level an agent needs to get its calls."""
    max_wait: int
    max_length: int
    overflow: str | None
    join_empty: bool
    leave_empty: bool
    wrap_up: int
    ring_timeout: int
    service_level: int
    position_interval: int
    max_misses: int
    callback: bool
    music_prompt: str | None
    members: tuple[MemberInfo, ...]

    @classmethod
    def of(cls, queue: CallQueue, tenant: Tenant, skills: Mapping[int, dict[str, int]]) -> "QueueInfo":
        """`skills`: each member's by user id."""
        return cls(
            tenant_domain=tenant.domain, number=queue.number, name=queue.name, strategy=queue.strategy,
            skills=parse_skills(queue.skills), max_wait=queue.max_wait, max_length=queue.max_length,
            overflow=queue.overflow, join_empty=queue.join_empty, leave_empty=queue.leave_empty,
            wrap_up=queue.wrap_up, ring_timeout=queue.ring_timeout, service_level=queue.service_level,
            position_interval=queue.position_interval, max_misses=queue.max_misses, callback=queue.callback,
            music_prompt=queue.music_prompt,
            members=tuple(MemberInfo(extension=member.user.extension, penalty=member.penalty,
                                     dynamic=member.dynamic, logged_in=member.logged_in, paused=member.paused,
                                     pause_reason=member.pause_reason, skills=skills.get(member.user_id, {}))
                          for member in queue.members),
        )


class CallQueueDao(Dao[CallQueue]):
    model = CallQueue
    searchable_columns = ("number", "name")


def parse_skills(text: str) -> dict[str, int]:
    """"fr:3,billing" -> {"fr": 3, "billing": 1}; InvalidValue naming a bad skill or level."""
    skills: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, colon, level_text = item.partition(":")
        name = name.strip().lower()
        if not _SKILL_RE.fullmatch(name):
            raise InvalidValue(f"skill {name[:40]!r}: 1 to {SKILL_MAX_LENGTH} of a-z, 0-9, '_' and '-'")
        try:
            level = int(level_text) if colon else 1
        except ValueError:
            raise InvalidValue(f"skill {name}: level {level_text[:20]!r} is not a number") from None
        check_range(f"skill {name} level", level, LEVEL_RANGE)
        skills[name] = level
    return skills


def format_skills(skills: Mapping[str, int]) -> str:
    return ",".join(f"{name}:{level}" for name, level in sorted(skills.items()))


class QueueService:
    """Queues and agents of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_queue(
        self,
        number: str,
        *,
        strategy: str = "ring-all",
        members: Sequence[tuple[str, int]] = (),
        dynamic_members: Sequence[tuple[str, int]] = (),
        skills: str = "",
        max_wait: int = 0,
        max_length: int = 0,
        overflow: str | None = None,
        join_empty: bool = False,
        leave_empty: bool = True,
        wrap_up: int = 10,
        ring_timeout: int = 15,
        service_level: int = 20,
        position_interval: int = 30,
        max_misses: int = 3,
        callback: bool = False,
        music_prompt: str | None = None,
        name: str | None = None,
        tenant_domain: str | None = None,
        replace: bool = False,
    ) -> QueueInfo:
        """Add the queue reached by dialling `number` (see `models.queue.CallQueue` for the rest);
        `members` and `dynamic_members` are (extension, penalty) pairs, static members logged
        in for good, dynamic ones logged out until they log in. InvalidValue names what is
        wrong; AlreadyExists if the tenant has a queue of that number, unless `replace`, which
        changes it in place (dynamic members kept keep their login and pause)."""
        try:
            number = validate_extension(number)
        except InvalidValue as exc:
            raise InvalidValue(f"queue number: {exc}") from None
        if name is not None and len(name) > QUEUE_NAME_MAX_LENGTH:
            raise InvalidValue(f"queue {number}: name is longer than {QUEUE_NAME_MAX_LENGTH} characters")
        try:
            strategy = parse_strategy(strategy).value
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None
        needed = format_skills(parse_skills(skills))
        if len(needed) > SKILLS_MAX_LENGTH:
            raise InvalidValue(f"skills: longer than {SKILLS_MAX_LENGTH} characters")
        for what, setting, allowed, unit in (
                ("max wait", max_wait, WAIT_RANGE, "seconds"),
                ("max length", max_length, LENGTH_RANGE, "callers"),
                ("wrap-up", wrap_up, WRAP_UP_RANGE, "seconds"),
                ("ring timeout", ring_timeout, RING_TIMEOUT_RANGE, "seconds"),
                ("service level", service_level, SERVICE_LEVEL_RANGE, "seconds"),
                ("position interval", position_interval, POSITION_INTERVAL_RANGE, "seconds"),
                ("max misses", max_misses, MISSES_RANGE, "")):
            check_range(what, setting, allowed, unit)
        wanted = [(extension, penalty, False) for extension, penalty in members] + \
            [(extension, penalty, True) for extension, penalty in dynamic_members]
        if len(wanted) > MAX_MEMBERS:
            raise InvalidValue(f"queue {number}: more than {MAX_MEMBERS} members")
        seen: set[str] = set()
        for extension, penalty, _ in wanted:
            check_range(f"member {extension} penalty", penalty, PENALTY_RANGE)
            if extension in seen:
                raise InvalidValue(f"member {extension} is given twice")
            seen.add(extension)
        overflow_to = parse_destination_for("overflow", overflow, repeat_allowed=False) \
            if overflow is not None else None
        if overflow_to is not None and overflow_to.number is None:
            raise InvalidValue(f"overflow: {overflow_to} is not a number to send callers to")
        if overflow_to is not None and overflow_to.number == number and \
                overflow_to.kind in (DestinationKind.EXTENSION, DestinationKind.QUEUE):
            raise InvalidValue(f"overflow: queue {number} cannot overflow to itself")
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            queues = CallQueueDao(session=session)
            queue = find_to_replace(queues, tenant, number, what="queue", replace=replace)
            users = _users(session, tenant, [extension for extension, _, _ in wanted])
            if overflow_to is not None:
                check_destination(session, tenant, "overflow", overflow_to)
            if music_prompt is not None and PromptDao(session=session).find_by(
                    tenant_id=tenant.id, name=music_prompt) is None:
                raise InvalidValue(f"music: prompt {music_prompt!r} does not exist in {tenant.domain}")
            settings = dict(
                name=name, strategy=strategy, skills=needed, max_wait=max_wait, max_length=max_length,
                overflow=str(overflow_to) if overflow_to is not None else None, join_empty=join_empty,
                leave_empty=leave_empty, wrap_up=wrap_up, ring_timeout=ring_timeout,
                service_level=service_level, position_interval=position_interval, max_misses=max_misses,
                callback=callback, music_prompt=music_prompt,
            )
            kept = {member.user_id: member for member in queue.members} if queue is not None else {}
            new_members = []
            for position, (extension, penalty, dynamic) in enumerate(wanted):
                user = users[extension]
                old = kept.get(user.id)
                logged_in = (old.logged_in if old is not None and old.dynamic else False) if dynamic else True
                new_members.append(QueueMember(
                    user_id=user.id, position=position, penalty=penalty, dynamic=dynamic, logged_in=logged_in,
                    paused=old.paused if old is not None else False,
                    pause_reason=old.pause_reason if old is not None else None))
            if queue is None:
                queue = CallQueue(tenant_id=tenant.id, number=number, members=new_members, **settings)
                try:
                    queues.create(queue)
                except IntegrityError:  # added by someone else since the check above
                    raise AlreadyExists(f"queue {number} of {tenant.domain} already exists") from None
            else:
                for column, value in settings.items():
                    setattr(queue, column, value)
                queue.members.clear()
                session.flush()
                queue.members.extend(new_members)
            session.flush()
            return self._info(session, tenant, number)

    def list_queues(self, tenant_domain: str | None = None) -> list[QueueInfo]:
        """The tenant's queues, by number."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            numbers = session.scalars(select(CallQueue.number).where(CallQueue.tenant_id == tenant.id)
                                      .order_by(CallQueue.number)).all()
            return [self._info(session, tenant, number) for number in numbers]

    def queue(self, number: str, tenant_domain: str | None = None) -> QueueInfo:
        """The tenant's queue `number`; NotFound if there is none."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            return self._info(session, tenant, number)

    def delete_queue(self, number: str, tenant_domain: str | None = None) -> None:
        """Delete the queue; NotFound if there is none, InvalidValue while something sends calls to it."""
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            queues = CallQueueDao(session=session)
            queue = queues.find_by(tenant_id=tenant.id, number=number)
            if queue is None:
                raise NotFound("CallQueue", {"number": number, "tenant": tenant.domain})
            check_unrouted(session, tenant, number, kind=DestinationKind.QUEUE, what="queue")
            queues.delete(queue)

    # -- agents ---------------------------------------------------------------------------------

    def log_in(self, extension: str, *, queue: str | None = None, logged_in: bool = True,
               tenant_domain: str | None = None) -> list[str]:
        """Log the agent in to (or out of) its dynamic memberships, of one queue or all; the
        queues concerned. InvalidValue when it is no dynamic member of any (or of that queue)."""
        with self._sessions.begin() as session:
            members = self._dynamic_memberships(session, extension, queue, tenant_domain)
            for member in members:
                member.logged_in = logged_in
                if not logged_in:
                    member.paused, member.pause_reason = False, None
            return sorted(member.queue.number for member in members)

    def pause(self, extension: str, *, queue: str | None = None, paused: bool = True,
              reason: str | None = None, tenant_domain: str | None = None) -> list[str]:
        """Pause (or unpause) the agent in one queue or all its queues; the queues concerned."""
        if reason is not None and len(reason) > PAUSE_REASON_MAX_LENGTH:
            raise InvalidValue(f"pause reason: longer than {PAUSE_REASON_MAX_LENGTH} characters")
        with self._sessions.begin() as session:
            members = self._memberships(session, extension, queue, tenant_domain)
            for member in members:
                member.paused, member.pause_reason = paused, (reason if paused else None)
            return sorted(member.queue.number for member in members)

    def set_skills(self, extension: str, skills: str, tenant_domain: str | None = None) -> dict[str, int]:
        """Replace the agent's skills with `skills` ("fr:3,billing:2"); what it has now."""
        wanted = parse_skills(skills)
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            user = _users(session, tenant, [extension])[extension]
            for skill in session.scalars(select(AgentSkill).where(AgentSkill.user_id == user.id)).all():
                session.delete(skill)
            session.flush()
            session.add_all(AgentSkill(user_id=user.id, skill=name, level=level)
                            for name, level in wanted.items())
            return wanted

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _info(session: Session, tenant: Tenant, number: str) -> QueueInfo:
        info = load_queue(session, tenant, number)
        if info is None:
            raise NotFound("CallQueue", {"number": number, "tenant": tenant.domain})
        return info

    def _memberships(self, session: Session, extension: str, queue: str | None,
                     tenant_domain: str | None) -> list[QueueMember]:
        tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
        user = _users(session, tenant, [extension])[extension]
        criteria = [QueueMember.user_id == user.id]
        if queue is not None:
            queue_id = session.scalar(select(CallQueue.id).where(CallQueue.tenant_id == tenant.id,
                                                                 CallQueue.number == queue))
            if queue_id is None:
                raise InvalidValue(f"queue {queue} does not exist in {tenant.domain}")
            criteria.append(QueueMember.queue_id == queue_id)
        members = list(session.scalars(select(QueueMember).where(*criteria)
                                       .options(selectinload(QueueMember.queue))).all())
        if not members:
            where = f"queue {queue}" if queue is not None else "any queue"
            raise InvalidValue(f"{extension} is not a member of {where} of {tenant.domain}")
        return members

    def _dynamic_memberships(self, session: Session, extension: str, queue: str | None,
                             tenant_domain: str | None) -> list[QueueMember]:
        members = [m for m in self._memberships(session, extension, queue, tenant_domain) if m.dynamic]
        if not members:
            where = f"queue {queue}" if queue is not None else "any queue"
            raise InvalidValue(f"{extension} is a static member of {where}: always logged in "
                               "(add it with --dynamic-member to let it log in and out)")
        return members


def load_queue(session: Session, tenant: Tenant, number: str) -> QueueInfo | None:
    """The tenant's queue `number` with its members and their skills (two queries); None if none."""
    queue = session.scalars(
        select(CallQueue).where(CallQueue.tenant_id == tenant.id, CallQueue.number == number)
        .options(selectinload(CallQueue.members).selectinload(QueueMember.user))).one_or_none()
    if queue is None:
        return None
    skills: dict[int, dict[str, int]] = {}
    user_ids = [member.user_id for member in queue.members]
    if user_ids:
        for user_id, skill, level in session.execute(
                select(AgentSkill.user_id, AgentSkill.skill, AgentSkill.level).where(
                    AgentSkill.user_id.in_(user_ids))):
            skills.setdefault(user_id, {})[skill] = level
    return QueueInfo.of(queue, tenant, skills)


def _users(session: Session, tenant: Tenant, extensions: Sequence[str]) -> dict[str, User]:
    """The tenant's users of `extensions`; InvalidValue naming the first that is not one."""
    found = {user.extension: user for user in session.scalars(
        select(User).where(User.tenant_id == tenant.id, User.extension.in_(list(extensions)))).all()}
    for extension in extensions:
        if extension not in found:
            raise InvalidValue(f"member {extension[:40]}: no such extension in {tenant.domain}")
    return found
