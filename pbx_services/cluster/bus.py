"""The event bus: publishers and consumers of events (see `events.py`) never know each other.

`EventBus` is the interface every part of the PBX uses. `InProcessBus` implements it for
the all-in-one process and tests; a Redis Streams bus for the cluster implements the same
two methods, so no publisher or consumer changes when it is swapped in. Consumers
subscribe to an event class; they receive events of exactly that class.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

logger = logging.getLogger(__name__)

EventT = TypeVar("EventT")
Unsubscribe = Callable[[], None]


class EventBus(Protocol):
    def publish(self, event: object) -> None:
        """Deliver `event` to the handlers subscribed to its class."""

    def subscribe(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> Unsubscribe:
        """Call `handler` with every event of class `event_type` published from now on;
        returns a function that cancels the subscription."""


class InProcessBus:
    """Synchronous delivery inside one process: `publish` returns once every handler ran.

    Handlers run on the publisher's thread (the event loop, in a daemon), so they must
    be quick and must not block. A handler that raises is logged and does not stop the
    delivery to the others, nor reach the publisher.
    """

    def __init__(self) -> None:
        self._handlers: defaultdict[type, list[Callable[[Any], None]]] = defaultdict(list)

    def publish(self, event: object) -> None:
        # A copy, so that a handler may subscribe or unsubscribe while being called.
        for handler in tuple(self._handlers.get(type(event), ())):
            try:
                handler(event)
            except Exception:
                logger.exception("handler %r failed on %r", handler, event)

    def subscribe(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> Unsubscribe:
        self._handlers[event_type].append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers.get(event_type, [])
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe
