"""The B2BUA's branches through trunks: the provider's challenge answered, a failing trunk
left for the route's next one, and the count of each trunk's calls (for `max_calls`).

A provider that challenges our INVITE (401/407) gets it again with digest credentials, once;
a trunk that answers 5xx or 408 (or is silent: the transaction's timeout is a 408) hands
the call to the next trunk of its route (`routing.CallRouter.next_trunk`), logged with why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..sip.message import SipRequest, SipResponse
from ..sip.transaction import make_tag
from .call import ROUTING
from .routing import server_failed
from .trunk_registration import credentials_for, parse_challenge

if TYPE_CHECKING:
    from .b2bua import B2bua
    from .call import Branch, Call

log = logging.getLogger(__name__)

_CREDENTIALS = ("Authorization", "Proxy-Authorization")


class TrunkBranches:
    def __init__(self, b2bua: B2bua) -> None:
        self._b2bua = b2bua

    def failed(self, call: Call, branch: Branch, response: SipResponse, now: float) -> bool:
        """A trunk's final failure on `branch`: True when it is taken care of (the INVITE sent
        again with credentials, or the call moved to the next trunk)."""
        trunk_call = branch.trunk
        assert trunk_call is not None
        if call.phase is not ROUTING or branch.cancelled:
            return False
        if self._answer_challenge(branch, response, now):
            return True
        code = response.status_code
        if not server_failed(code):
            log.info("call to %s: trunk %s answered %d %s", trunk_call.number, trunk_call.trunk.name, code,
                     response.reason)
            return False
        target = self._b2bua.router.next_trunk(trunk_call, code)
        if target is None:
            return False
        branch.final = code
        self._b2bua._start_branch(call, target, now)  # counts the call for the next trunk, not this one
        return True

    def _answer_challenge(self, branch: Branch, response: SipResponse, now: float) -> bool:
        trunk_call = branch.trunk
        assert trunk_call is not None
        account = trunk_call.trunk.account
        invite = branch.invite
        challenge = parse_challenge(response)
        if challenge is None:
            return False
        if account is None or any(invite.headers.get(name) for name in _CREDENTIALS):
            log.warning("call to %s: trunk %s refused %s (%d %s)", trunk_call.number, trunk_call.trunk.name,
                        "our credentials" if account is not None else "the call: it has no credentials",
                        response.status_code, response.reason)
            return False
        headers = invite.headers.copy()
        stack = self._b2bua._stack
        headers.set("Via", stack.via(branch.leg.transport))
        headers.set("CSeq", f"{invite.cseq.seq + 1} INVITE")
        headers.add(*credentials_for(response, challenge, account, method="INVITE", uri=str(invite.uri),
                                     cnonce=make_tag(), nc=1))
        again = SipRequest("INVITE", invite.uri, headers, invite.body)
        user_data = branch.tx.user_data if branch.tx is not None else None
        branch.invite = again
        branch.tx = stack.send_request(again, branch.leg.peer, branch.leg.transport, now)
        branch.tx.user_data = user_data
        log.info("call to %s: trunk %s challenged (%d), INVITE sent again with credentials",
                 trunk_call.number, trunk_call.trunk.name, response.status_code)
        return True
