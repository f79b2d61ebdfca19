"""Call queues (ACD): callers wait for the next available agent, who is picked by a strategy."""

from datetime import datetime

from sqlalchemy import SmallInteger, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.schema import ForeignKey

from pbx_services.cluster.destinations import DESTINATION_MAX_LENGTH
from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.models.user import User
from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH

STRATEGY_MAX_LENGTH = 32
SKILL_MAX_LENGTH = 32
SKILLS_MAX_LENGTH = 255
PAUSE_REASON_MAX_LENGTH = 64


class CallQueue(Base):
    """A queue reached by dialling its number in its tenant.

    Callers hear music (and, every `position_interval` seconds, their position and the
    estimated wait) until an agent answers. Agents are its members; `strategy` picks whom to
    ring among the available ones of the lowest penalty, each for `ring_timeout` seconds; an
    agent gets `wrap_up` seconds after each call before the next. `skills` ("fr:3,billing:1")
    are what its calls need of an agent. A caller waiting `max_wait` seconds (0: no limit), or
    arriving when `max_length` wait already (0: no limit), goes to `overflow` (a destination:
    an extension, `queue:N`, `ivr:N`, `meeting:N`), or hears that nobody can answer and is hung
    up when there is none. With no agent logged in, a caller joins only with `join_empty`,
    and waiting callers leave (to the overflow) with `leave_empty`. An agent who misses
    `max_misses` rings in a row is paused (0: never). With `callback`, a caller may press 1
    to leave their number, hang up, keep their place and be called back.
    """

    __tablename__ = "call_queues"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(EXTENSION_MAX_LENGTH))
    name: Mapped[str | None] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(STRATEGY_MAX_LENGTH), default="ring-all")
    skills: Mapped[str] = mapped_column(String(SKILLS_MAX_LENGTH), default="")
    max_wait: Mapped[int] = mapped_column(default=0)
    max_length: Mapped[int] = mapped_column(default=0)
    overflow: Mapped[str | None] = mapped_column(String(DESTINATION_MAX_LENGTH))
    join_empty: Mapped[bool] = mapped_column(default=False, server_default=false())
    leave_empty: Mapped[bool] = mapped_column(default=True, server_default=true())
    wrap_up: Mapped[int] = mapped_column(SmallInteger, default=10)
    ring_timeout: Mapped[int] = mapped_column(SmallInteger, default=15)
    service_level: Mapped[int] = mapped_column(SmallInteger, default=20)
    """Seconds within which an answered call counts as answered within the service level."""
    position_interval: Mapped[int] = mapped_column(SmallInteger, default=30)
    max_misses: Mapped[int] = mapped_column(SmallInteger, default=3)
    callback: Mapped[bool] = mapped_column(default=False, server_default=false())
    music_prompt: Mapped[str | None] = mapped_column(String(64))
    """A prompt of the tenant played in a loop while waiting; None: the built-in music."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    members: Mapped[list["QueueMember"]] = relationship(
        back_populates="queue", cascade="all, delete-orphan", order_by="QueueMember.position")

    def __repr__(self) -> str:
        return f"CallQueue(id={self.id!r}, tenant_id={self.tenant_id!r}, number={self.number!r})"


class QueueMember(Base):
    """An agent (a user of the queue's tenant) of a queue. A static member is always logged
    in; a dynamic one logs in and out (`pbx agent login`, a feature code). A paused member
    gets no calls until unpaused; `pause_reason` says why (a break, auto-paused after misses)."""

    __tablename__ = "queue_members"
    __table_args__ = (UniqueConstraint("queue_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("call_queues.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    """Its place in the member list (the order of the linear and ordered strategies)."""
    penalty: Mapped[int] = mapped_column(SmallInteger, default=0)
    """Members of a higher penalty are rung only when no lower one is available."""
    dynamic: Mapped[bool] = mapped_column(default=False, server_default=false())
    logged_in: Mapped[bool] = mapped_column(default=True, server_default=true())
    paused: Mapped[bool] = mapped_column(default=False, server_default=false())
    pause_reason: Mapped[str | None] = mapped_column(String(PAUSE_REASON_MAX_LENGTH))

    queue: Mapped[CallQueue] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class AgentSkill(Base):
    """A skill of a user as an agent, with its level (1-10): a queue whose calls need the
    skill at a level rings only agents who have it at that level or above."""

    __tablename__ = "agent_skills"
    __table_args__ = (UniqueConstraint("user_id", "skill"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    skill: Mapped[str] = mapped_column(String(SKILL_MAX_LENGTH))
    level: Mapped[int] = mapped_column(SmallInteger)
