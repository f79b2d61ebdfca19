"""The Call Manager on its own address beside the VIP: keepalived's check and operators' probes.

In a cluster `sip.host` is the VIP, which every Call Manager binds whether keepalived gave it the
address or not; `sip.node_host` is the host's own address, which never moves. Here, on
loopback, 127.0.0.1 plays the VIP and 127.0.0.2 the node address.
"""

from __future__ import annotations

import secrets
import socket

import pytest

from .conftest import PbxServer

NODE_HOST = "127.0.0.2"


def options(host: str, port: int) -> tuple[bytes, tuple[str, int]]:
    call_id = secrets.token_hex(8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        local_port = sock.getsockname()[1]
        request = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{call_id}\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag={call_id[:6]}\r\n"
                   f"To: <sip:{host}:{port}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
                   "Content-Length: 0\r\n\r\n")
        sock.sendto(request.encode(), (host, port))
        return sock.recvfrom(65535)


@pytest.mark.pbx_env(PBX_SIP__NODE_HOST=NODE_HOST)
def test_options_on_the_node_address_is_answered_from_that_address(pbx_server: PbxServer) -> None:
    response, source = options(NODE_HOST, pbx_server.port)

    assert response.startswith(b"SIP/2.0 200 ")
    assert source == (NODE_HOST, pbx_server.port)
    response, source = options("127.0.0.1", pbx_server.port)  # the "VIP" still serves
    assert response.startswith(b"SIP/2.0 200 ") and source == ("127.0.0.1", pbx_server.port)
    assert pbx_server.health()["holds_sip_address"] is True
