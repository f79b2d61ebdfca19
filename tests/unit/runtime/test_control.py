"""Merging the workers' replies, and dispatching a request to the component serving its path."""

from __future__ import annotations

import asyncio

from pbx_services.runtime.control import (
    NOT_FOUND,
    ControlReply,
    ControlRequest,
    control_token,
    dispatch,
    merge_replies,
)


def test_the_worker_that_has_the_meeting_answers_for_all() -> None:
    found = ControlReply(200, {"meeting": {"room": "850"}})
    assert merge_replies([NOT_FOUND, found, NOT_FOUND]) == found
    assert merge_replies([NOT_FOUND, NOT_FOUND]) == NOT_FOUND
    assert merge_replies([]) == NOT_FOUND


def test_lists_of_several_workers_are_joined() -> None:
    replies = [ControlReply(200, {"meetings": [1], "server": "m1"}), ControlReply(200, {"meetings": [2, 3]})]
    assert merge_replies(replies) == ControlReply(200, {"meetings": [1, 2, 3], "server": "m1"})


def test_a_worker_that_did_not_answer_does_not_hide_the_one_that_found_it() -> None:
    late = ControlReply.error(504, "worker 1 did not answer")
    found = ControlReply(200, {"meeting": {}})
    assert merge_replies([late, found]) == found
    assert merge_replies([late, NOT_FOUND]) == late
    refused = ControlReply.error(400, "'muted' must be true or false")
    assert merge_replies([NOT_FOUND, refused]) == refused


def test_the_token_is_derived_from_the_secret_and_does_not_contain_it() -> None:
    secret = "0123456789abcdef" * 2
    assert control_token(secret) == control_token(secret)
    assert control_token(secret) != control_token("f" * 32)
    assert secret not in control_token(secret) and len(control_token(secret)) == 64


class _Meetings:
    control_paths = ("meetings",)

    async def control(self, request: ControlRequest) -> ControlReply:
        return ControlReply(200, {"path": list(request.path)})


def test_a_request_goes_to_the_component_serving_its_first_segment() -> None:
    parts = [object(), _Meetings()]
    assert asyncio.run(dispatch(parts, ControlRequest("GET", ("meetings", "x")))) == ControlReply(
        200, {"path": ["meetings", "x"]})
    assert asyncio.run(dispatch(parts, ControlRequest("GET", ("queues",)))) == NOT_FOUND
    assert asyncio.run(dispatch(parts, ControlRequest("GET", ()))) == NOT_FOUND
