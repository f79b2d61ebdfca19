"""A user's call forwarding and do-not-disturb: where its calls go instead of ringing it."""

from sqlalchemy import Boolean, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from pbx_services.cluster.models.base import Base
from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH

DEFAULT_NO_ANSWER_SECONDS = 20


class CallForwarding(Base):
    """One row per user that has any forwarding or do-not-disturb set; the destinations are
    numbers of the user's tenant (an extension, a menu, queue or room, or a number an outbound
    route takes). `always` wins over everything; do-not-disturb makes the user busy, so its
    calls go to `busy` if set and are refused 486 otherwise."""

    __tablename__ = "call_forwarding"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    always: Mapped[str | None] = mapped_column(String(EXTENSION_MAX_LENGTH))
    busy: Mapped[str | None] = mapped_column(String(EXTENSION_MAX_LENGTH))
    no_answer: Mapped[str | None] = mapped_column(String(EXTENSION_MAX_LENGTH))
    no_answer_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_NO_ANSWER_SECONDS)
    unreachable: Mapped[str | None] = mapped_column(String(EXTENSION_MAX_LENGTH))
    dnd: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def __repr__(self) -> str:
        return f"CallForwarding(user_id={self.user_id!r})"
