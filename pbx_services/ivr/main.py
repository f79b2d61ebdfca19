"""`pbx ivr`: the IVR workers on the application-server frame.

Menus and prompts come from the database (`MenuCatalog`); each worker runs an
`IvrApplication` for its calls, the `VoicemailApplication` for the voicemail numbers
(`*97`, `vm*EXT`), whose messages are kept under `ivr.recording_dir`/voicemail (shared by
the IVR servers of a cluster) and emailed through `smtp`, in the loop's executor, and the
`FeatureCodeApplication` for forwarding and do-not-disturb from the phone (`*72`, `*78`...).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future

from ..appserver import daemon
from ..appserver.core import Application
from ..appserver.dispatch import ByNumber
from ..appserver.sounds import Announcements
from ..appserver.worker import AppServerWorker
from ..cluster.config import PbxConfig
from ..cluster.database import create_engine_for, session_factory
from ..cluster.forwarding import ForwardingService
from ..cluster.voicemail import VoicemailService, is_voicemail_number
from ..features.application import FeatureCodeApplication, is_feature_number
from ..voicemail.application import VoicemailApplication
from ..voicemail.delivery import Delivery, Deposit
from .application import IvrApplication
from .catalog import MenuCatalog

log = logging.getLogger(__name__)

ROLE = "ivr"
NAME = "IVR server"


def run(config: PbxConfig) -> int:
    """Run the IVR server in the foreground until SIGINT/SIGTERM; the exit status."""
    return daemon.run(role=ROLE, name=NAME, config=config, section=config.ivr, factory=make_worker)


def make_worker(config: PbxConfig, index: int) -> AppServerWorker:
    """Worker `index` of `pbx ivr`: its SIP port and its share of the RTP ports."""
    return ivr_worker(config, index=index, port_range=daemon.worker_port_range(config.ivr, index))


def ivr_worker(config: PbxConfig, *, index: int = 0,
               port_range: tuple[int, int] | None = None) -> AppServerWorker:
    """An IVR worker (also the all-in-one's, in its own loop)."""
    engine = create_engine_for(config.database.url)
    catalog = MenuCatalog(engine)
    mailboxes = VoicemailService(sessions=session_factory(engine),
                                 default_domain=config.callmanager.default_domain)
    forwarding = ForwardingService(sessions=session_factory(engine),
                                   default_domain=config.callmanager.default_domain)
    counters: dict[str, int] = {}
    delivery = Delivery(mailboxes=mailboxes, smtp=config.smtp, counters=counters)

    def application() -> Application:
        loop = asyncio.get_running_loop()
        wall_offset = time.time() - loop.time()

        def deliver(deposit: Deposit) -> None:
            loop.run_in_executor(None, delivery.deliver, deposit).add_done_callback(_log_failure)

        announcements = Announcements()
        voicemail = VoicemailApplication(
            mailboxes=mailboxes, prompts=catalog.prompts, announcements=announcements,
            directory=config.ivr.recording_dir / "voicemail", deliver=deliver, wall_offset=wall_offset,
            counters=counters)
        features = FeatureCodeApplication(forwarding=forwarding, announcements=announcements,
                                          counters=counters)
        return ByNumber(default=IvrApplication(catalog=catalog, wall_offset=wall_offset),
                        routes=[(is_voicemail_number, voicemail), (is_feature_number, features)])

    return AppServerWorker(role=ROLE, name=NAME, config=config.ivr, application=application, index=index,
                           port_range=port_range, on_stop=engine.dispose)


def _log_failure(future: Future[None] | asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("voicemail delivery failed", exc_info=future.exception())
