"""`pbx media` on loopback, driven through its control protocol; two UDP sockets play the phones.

Every assertion is on what a phone (or the controller) received: relayed bytes, decoded
audio, the recording, replies and notifications.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pbx_services.rtp.g711 import alaw_decode, ulaw_decode, ulaw_encode
from pbx_services.sip.sdp import SessionDescription
from tests.integration.conftest import PBX, free_port, stop

pytestmark = pytest.mark.integration

AUTH_SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
LOOPBACK = "127.0.0.1"
PCMU, PCMA, EVENT = 0, 8, 101


def _even_port_block(count: int) -> int:
    base = free_port(pair_spacing=count + 1)
    return base + (base % 2)


@dataclass
class MediaDaemon:
    process: subprocess.Popen[str]
    control_port: int
    http_port: int
    recording_dir: Path
    output: list[str]


@contextlib.contextmanager
def media_daemon(tmp_path: Path, *, workers: int = 1, pairs: int = 20, **media: Any) -> Iterator[MediaDaemon]:
    """`pbx media` with `workers` workers and `pairs` RTP/RTCP pairs; must exit 0 when stopped."""
    control_port = free_port(pair_spacing=workers)
    http_port = free_port()
    port_min = _even_port_block(2 * pairs)
    recording_dir = tmp_path / "recordings"
    config = {
        "auth": {"secret": AUTH_SECRET},
        "http": {"host": LOOPBACK, "port": http_port},
        "media": {
            "control_port": control_port,
            "port_min": port_min,
            "port_max": port_min + 2 * pairs - 1,
            "workers": workers,
            "recording_dir": str(recording_dir),
            **media,
        },
    }
    config_path = tmp_path / "media.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    process = subprocess.Popen(
        [*PBX, "media", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "listening on" in line and "media server" in line:
            break
    else:
        process.kill()
    if process.poll() is not None:
        raise RuntimeError("pbx media did not start:\n" + "".join(output))
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        yield MediaDaemon(process, control_port, http_port, recording_dir, output)
    finally:
        code = stop(process)
        reader.join(timeout=5)
    assert code == 0, f"pbx media exited with {code}:\n" + "".join(output[-50:])


_cookies = itertools.count(int.from_bytes(os.urandom(4), "big"))


class Controller:
    """The control protocol's client side, as a Call Manager would speak it."""

    def __init__(self, port: int) -> None:
        self.address = (LOOPBACK, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.notifications: list[tuple[str, dict[str, Any]]] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.address)

    def exchange(self, cookie: str, body: dict[str, Any], *, timeout: float = 3.0) -> dict[str, Any]:
        data = f"{cookie} ".encode() + json.dumps(body).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.sendto(data, self.address)
            self.sock.settimeout(0.5)
            try:
                while True:
                    reply, _ = self.sock.recvfrom(65535)
                    reply_cookie, _, payload = reply.partition(b" ")
                    message = json.loads(payload)
                    if "command" in message:
                        self.notifications.append((reply_cookie.decode(), message))
                    elif reply_cookie.decode() == cookie:
                        return dict(message)
            except TimeoutError:
                continue
        raise AssertionError(f"no reply to {body}")

    def __call__(self, command: str, **fields: Any) -> dict[str, Any]:
        return self.exchange(f"t{next(_cookies)}", {"command": command, **fields})

    def ok(self, command: str, **fields: Any) -> dict[str, Any]:
        reply = self(command, **fields)
        assert reply["result"] == "ok", reply
        return reply

    def wait_for_notification(self, timeout: float) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not self.notifications and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                reply, _ = self.sock.recvfrom(65535)
                cookie, _, payload = reply.partition(b" ")
                message = json.loads(payload)
                if "command" in message:
                    self.notifications.append((cookie.decode(), message))
        assert self.notifications, "no notification arrived"
        return self.notifications.pop(0)

    def close(self) -> None:
        self.sock.close()


class Phone:
    """A UDP socket sending and receiving RTP as a phone would."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.sequence = 100
        self.timestamp = 1000
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.relay: tuple[str, int] | None = None

    def sdp(self, *codecs: tuple[int, str], events: bool = True, direction: str = "sendrecv") -> str:
        formats = [str(pt) for pt, _ in codecs] + ([str(EVENT)] if events else [])
        lines = [
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio {self.port} RTP/AVP {' '.join(formats)}",
        ]
        lines += [f"a=rtpmap:{pt} {name}/8000" for pt, name in codecs]
        if events:
            lines += [f"a=rtpmap:{EVENT} telephone-event/8000", f"a=fmtp:{EVENT} 0-16"]
        lines += ["a=ptime:20", f"a={direction}"]
        return "\r\n".join(lines) + "\r\n"

    def learn_relay(self, sdp: str) -> None:
        """Send to the media server's address from the SDP this phone was given."""
        description = SessionDescription.parse(sdp)
        connection = description.media_connection(0)
        self.relay = (connection.address, description.media[0].port)

    def rtp(
        self, payload: bytes, payload_type: int, *, marker: bool = False, timestamp: int | None = None
    ) -> bytes:
        packet = (
            struct.pack(
                "!BBHII",
                0x80,
                payload_type | (0x80 if marker else 0),
                self.sequence,
                self.timestamp if timestamp is None else timestamp,
                self.ssrc,
            )
            + payload
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        if timestamp is None:
            self.timestamp += 160
        return packet

    def send(self, data: bytes, *, sock: socket.socket | None = None) -> None:
        assert self.relay is not None
        (sock or self.sock).sendto(data, self.relay)

    def receive(self, *, timeout: float = 1.0, count: int | None = None) -> list[bytes]:
        packets: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (count is None or len(packets) < count):
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                packets.append(self.sock.recv(65535))
        return packets

    def close(self) -> None:
        self.sock.close()


def _tone(frequency: float, frames: int, start: int = 0) -> list[np.ndarray]:
    t = np.arange(start * 160, (start + frames) * 160) / 8000
    samples = (8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return [samples[i * 160 : (i + 1) * 160] for i in range(frames)]


def _dominant_frequency(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def _payload_type(packet: bytes) -> int:
    return packet[1] & 0x7F


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaDaemon]:
    """One daemon with two workers for the tests that do not disturb each other (worker 0 carries calls)."""
    with media_daemon(tmp_path_factory.mktemp("media"), workers=2, pairs=60) as running:
        yield running


@pytest.fixture
def control(daemon: MediaDaemon) -> Iterator[Controller]:
    controller = Controller(daemon.control_port)
    yield controller
    controller.close()


@pytest.fixture
def phones() -> Iterator[tuple[Phone, Phone]]:
    a, b = Phone(), Phone()
    yield a, b
    a.close()
    b.close()


_call_ids = itertools.count(1)


def _set_up(
    control: Controller,
    a: Phone,
    b: Phone,
    *,
    offer: tuple[tuple[int, str], ...] = ((PCMU, "PCMU"),),
    answer: tuple[tuple[int, str], ...] = ((PCMU, "PCMU"),),
    **offer_fields: Any,
) -> str:
    call_id = f"call-{os.getpid()}-{next(_call_ids)}@test"
    offered = control.ok("offer", call_id=call_id, leg="a", sdp=a.sdp(*offer), **offer_fields)
    b.learn_relay(offered["sdp"])
    answered = control.ok("answer", call_id=call_id, leg="b", sdp=b.sdp(*answer))
    a.learn_relay(answered["sdp"])
    return call_id


def test_passthrough_relays_the_bytes_unchanged_both_ways(
    control: Controller, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    call_id = _set_up(control, a, b)
    sent_by_a = [a.rtp(bytes([i]) * 160, PCMU) for i in range(20)]
    sent_by_b = [b.rtp(bytes([100 + i]) * 160, PCMU) for i in range(20)]
    for packet_a, packet_b in zip(sent_by_a, sent_by_b, strict=True):
        a.send(packet_a)
        b.send(packet_b)
    assert b.receive(count=20) == sent_by_a
    assert a.receive(count=20) == sent_by_b
    legs = control.ok("query", call_id=call_id)["legs"]
    assert legs["a"]["packets_in"] == 20 and legs["b"]["packets_out"] == 20
    assert legs["a"]["remote"] == [LOOPBACK, a.port] and legs["a"]["codec"] == "PCMU"
    deleted = control.ok("delete", call_id=call_id)
    assert deleted["recording"] is None and deleted["legs"]["b"]["bytes_in"] == 20 * 172


def test_payload_types_are_renumbered_when_the_phones_number_a_codec_differently(
    control: Controller, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    call_id = _set_up(control, a, b, offer=((96, "PCMU"),), answer=((96, "PCMU"),))
    # b's answer keeps a's number (96); a phone that sends its codec under another number is
    # shown by the offer the other way: b re-offers PCMU as static 0, a answers 96.
    reoffer = control.ok("offer", call_id=call_id, leg="b", sdp=b.sdp((PCMU, "PCMU")))
    a.learn_relay(reoffer["sdp"])
    control.ok("answer", call_id=call_id, leg="a", sdp=a.sdp((96, "PCMU")))
    b.send(b.rtp(b"\x11" * 160, PCMU))
    a.send(a.rtp(b"\x22" * 160, 96))
    [to_a] = a.receive(count=1)
    [to_b] = b.receive(count=1)
    assert _payload_type(to_a) == 96 and to_a[12:] == b"\x11" * 160
    assert _payload_type(to_b) == PCMU and to_b[12:] == b"\x22" * 160
    control.ok("delete", call_id=call_id)


def test_latching_follows_the_source_port_not_the_sdp(
    control: Controller, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    call_id = _set_up(control, a, b)
    natted = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a behind NAT: another source port
    natted.bind((LOOPBACK, 0))
    natted.settimeout(1.0)
    try:
        a.send(a.rtp(b"\x01" * 160, PCMU), sock=natted)
        assert len(b.receive(count=1)) == 1
        b.send(b.rtp(b"\x02" * 160, PCMU))
        assert natted.recv(2048)[12:] == b"\x02" * 160  # to the latched source, not the SDP port
        assert a.receive(timeout=0.2) == []
        query = control.ok("query", call_id=call_id)
        assert query["legs"]["a"]["remote"] == [LOOPBACK, natted.getsockname()[1]]
    finally:
        natted.close()
    control.ok("delete", call_id=call_id)


def test_a_packet_from_a_third_address_is_dropped_and_counted(
    control: Controller, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    call_id = _set_up(control, a, b)
    a.send(a.rtp(b"\x01" * 160, PCMU))
    assert len(b.receive(count=1)) == 1
    before = control.ok("statistics")["packets_dropped"]["wrong_source"]
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        intruder.sendto(a.rtp(b"\x66" * 160, PCMU), a.relay)
    finally:
        intruder.close()
    assert b.receive(timeout=0.3) == []
    assert control.ok("query", call_id=call_id)["legs"]["a"]["dropped"] == 1
    assert control.ok("statistics")["packets_dropped"]["wrong_source"] == before + 1
    control.ok("delete", call_id=call_id)


def test_pcmu_is_transcoded_to_pcma(control: Controller, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    call_id = f"transcode-{os.getpid()}"
    offered = control.ok("offer", call_id=call_id, leg="a", sdp=a.sdp((PCMU, "PCMU")))
    assert "PCMA/8000" in offered["sdp"]  # appended for b, which a did not offer
    b.learn_relay(offered["sdp"])
    answered = control.ok("answer", call_id=call_id, leg="b", sdp=b.sdp((PCMA, "PCMA")))
    assert "PCMU/8000" in answered["sdp"] and "PCMA" not in answered["sdp"]
    a.learn_relay(answered["sdp"])
    frames = _tone(1000, 25)
    for frame in frames:
        a.send(a.rtp(ulaw_encode(frame), PCMU))
    received = b.receive(count=25)
    assert len(received) == 25 and {_payload_type(packet) for packet in received} == {PCMA}
    audio = np.concatenate([alaw_decode(packet[12:]) for packet in received])
    assert _dominant_frequency(audio) == pytest.approx(1000, abs=20)
    assert control.ok("statistics")["packets_transcoded"] >= 25
    control.ok("delete", call_id=call_id)


def test_telephone_events_pass_through_and_are_listed_by_query(
    control: Controller, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    call_id = _set_up(control, a, b)
    for digit_code, timestamp in ((1, 8000), (11, 16000)):  # "1", then "#"
        for step, end in ((1, False), (2, False), (3, True), (3, True), (3, True)):
            payload = struct.pack("!BBH", digit_code, (0x80 if end else 0) | 10, 160 * step)
            a.send(a.rtp(payload, EVENT, marker=step == 1 and not end, timestamp=timestamp))
    received = b.receive(count=10)
    assert len(received) == 10 and {_payload_type(packet) for packet in received} == {EVENT}
    assert control.ok("query", call_id=call_id)["legs"]["a"]["dtmf"] == "1#"
    control.ok("delete", call_id=call_id)


def test_recording_holds_each_direction_on_its_own_channel(
    control: Controller, daemon: MediaDaemon, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    call_id = _set_up(control, a, b)
    path = Path(control.ok("record_start", call_id=call_id)["recording"])
    assert path.parent == daemon.recording_dir
    for frame_a, frame_b in zip(_tone(440, 50), _tone(1500, 50), strict=True):
        a.send(a.rtp(ulaw_encode(frame_a), PCMU))
        b.send(b.rtp(ulaw_encode(frame_b), PCMU))
        time.sleep(0.02)
    heard_by_b, heard_by_a = len(b.receive(count=50)), len(a.receive(count=50))
    assert (heard_by_b, heard_by_a) == (50, 50), (
        control.ok("query", call_id=call_id),
        control.ok("statistics"),
    )
    assert control.ok("record_stop", call_id=call_id)["recording"] == str(path)
    assert control.ok("delete", call_id=call_id)["recording"] == str(path)
    with wave.open(str(path), "rb") as recording:
        assert (recording.getnchannels(), recording.getframerate(), recording.getsampwidth()) == (2, 8000, 2)
        samples = np.frombuffer(recording.readframes(recording.getnframes()), dtype="<i2").reshape(-1, 2)
    assert 0.8 <= len(samples) / 8000 <= 1.6
    voiced = [np.flatnonzero(np.abs(samples[:, channel]) > 1000) for channel in (0, 1)]
    for channel, frequency in ((0, 440), (1, 1500)):
        heard = samples[voiced[channel][0] : voiced[channel][-1], channel]
        assert 0.9 <= len(heard) / 8000 <= 1.1
        assert _dominant_frequency(heard) == pytest.approx(frequency, abs=10)
    # Both directions were spoken at the same time, so they start together in the file.
    assert abs(voiced[0][0] - voiced[1][0]) < 8000 * 0.1


def test_ringback_is_heard_by_a_until_b_answers_with_media(
    control: Controller, phones: tuple[Phone, Phone]
) -> None:
    a, b = phones
    call_id = f"ringback-{os.getpid()}"
    offered = control.ok("offer", call_id=call_id, leg="a", sdp=a.sdp((PCMU, "PCMU")))
    b.learn_relay(offered["sdp"])
    control.ok("play_tone", call_id=call_id, leg="a", tone="ringback", plan="us")
    ringback = a.receive(timeout=0.5)
    assert len(ringback) >= 15
    assert {_payload_type(packet) for packet in ringback} == {PCMU}
    assert len({packet[8:12] for packet in ringback}) == 1  # one SSRC of its own
    sequence = [struct.unpack("!H", packet[2:4])[0] for packet in ringback]
    assert sequence == list(range(sequence[0], sequence[0] + len(sequence)))
    audio = np.concatenate([ulaw_decode(packet[12:]) for packet in ringback])
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    frequencies = np.fft.rfftfreq(len(audio), 1 / 8000)
    peaks = sorted(frequencies[np.argsort(spectrum)[-2:]])  # US ringback: 440 + 480 Hz
    assert peaks == [pytest.approx(440, abs=15), pytest.approx(480, abs=15)]
    a.learn_relay(control.ok("answer", call_id=call_id, leg="b", sdp=b.sdp((PCMU, "PCMU")))["sdp"])
    b.send(b.rtp(b"\x55" * 160, PCMU))
    time.sleep(0.1)
    a.receive(timeout=0.1)
    b.send(b.rtp(b"\x55" * 160, PCMU))
    assert [packet[12:] for packet in a.receive(timeout=0.3)] == [b"\x55" * 160]  # the tone has stopped
    control.ok("delete", call_id=call_id)


def test_malformed_rtp_is_dropped_and_counted(control: Controller, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    call_id = _set_up(control, a, b)
    before = control.ok("statistics")["packets_dropped"]["malformed_rtp"]
    for garbage in (
        b"\x80\x00",
        b"\x40" + bytes(20),
        bytes([0x8F]) + bytes(20),
    ):  # short, version 1, 15 CSRCs
        a.send(garbage)
    assert b.receive(timeout=0.3) == []
    assert control.ok("statistics")["packets_dropped"]["malformed_rtp"] == before + 3
    a.send(a.rtp(b"\x01" * 160, PCMU))
    assert len(b.receive(count=1)) == 1
    control.ok("delete", call_id=call_id)


def test_errors_name_what_is_wrong(control: Controller, phones: tuple[Phone, Phone]) -> None:
    a, _ = phones
    assert control("query", call_id="no-such-call") == {"result": "error", "error_reason": "unknown call"}
    assert control("offer", leg="a", sdp=a.sdp((PCMU, "PCMU")))["error_reason"] == "missing field: call_id"
    assert (
        control("offer", call_id="x", leg="c", sdp=a.sdp((PCMU, "PCMU")))["error_reason"] == "bad field: leg"
    )
    assert control("offer", call_id="x", leg="a", sdp="v=0\r\n")["error_reason"].startswith("bad sdp: ")
    assert (
        control("play_tone", call_id="no-such-call", leg="a", tone="dial")["error_reason"] == "unknown call"
    )


def test_a_retransmitted_offer_gets_the_same_reply_and_allocates_once(
    control: Controller, phones: tuple[Phone, Phone]
) -> None:
    a, _ = phones
    free = control.ok("statistics")["ports_free"]
    body = {
        "command": "offer",
        "call_id": f"retransmit-{os.getpid()}",
        "leg": "a",
        "sdp": a.sdp((PCMU, "PCMU")),
    }
    first = control.exchange("same-cookie", body)
    assert control.exchange("same-cookie", body) == first
    assert control.ok("statistics")["ports_free"] == free - 2
    control.ok("delete", call_id=body["call_id"])


def test_garbage_on_the_control_port_is_dropped(control: Controller) -> None:
    for garbage in (b"\x00\xff garbage", b"nocookie", b"x" * 2000):
        control.send_raw(garbage)
    assert control("ping")["result"] == "pong"
    assert control("statistics")["control_errors"] >= 2


def test_a_killed_worker_is_restarted_with_a_new_boot_id(daemon: MediaDaemon) -> None:
    worker = Controller(daemon.control_port + 1)
    try:
        before = worker("ping")
        assert before["worker"] == 1
        os.kill(before["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 20
        after = before
        while after.get("boot_id") == before["boot_id"] and time.monotonic() < deadline:
            time.sleep(0.2)
            with contextlib.suppress(AssertionError):
                after = worker.exchange(f"after-{time.monotonic()}", {"command": "ping"}, timeout=0.5)
        assert (
            after["result"] == "pong"
            and after["boot_id"] != before["boot_id"]
            and after["pid"] != before["pid"]
        )
    finally:
        worker.close()


def test_one_call_fills_the_ports_then_times_out_and_frees_them(tmp_path: Path) -> None:
    with media_daemon(tmp_path, pairs=2, rtp_timeout=1) as running:
        control = Controller(running.control_port)
        a, b = Phone(), Phone()
        try:
            control.ok("offer", call_id="first", leg="a", sdp=a.sdp((PCMU, "PCMU")))
            assert control("offer", call_id="second", leg="a", sdp=a.sdp((PCMU, "PCMU"))) == {
                "result": "error",
                "error_reason": "no free ports",
            }
            assert control("ping")["ports_free"] == 0
            cookie, notification = control.wait_for_notification(timeout=4)
            assert notification == {"command": "timeout", "call_id": "first"}
            control.sock.sendto(f"{cookie} ".encode() + b'{"result":"ok"}', control.address)
            assert control("query", call_id="first")["error_reason"] == "unknown call"
            control.ok("offer", call_id="second", leg="a", sdp=a.sdp((PCMU, "PCMU")))
            assert control("statistics")["sessions_timed_out"] == 1
        finally:
            control.close()
            a.close()
            b.close()


def test_a_bad_config_value_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "media.yml"
    config.write_text(json.dumps({"auth": {"secret": AUTH_SECRET}, "media": {"tone_plan": "atlantis"}}))
    result = subprocess.run(
        [*PBX, "media", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "media.tone_plan" in result.stderr and "atlantis" in result.stderr


def test_a_control_port_in_use_stops_start_up_in_one_line(tmp_path: Path) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind((LOOPBACK, 0))
    port = taken.getsockname()[1]
    config = tmp_path / "media.yml"
    port_min = _even_port_block(8)
    config.write_text(
        json.dumps(
            {
                "auth": {"secret": AUTH_SECRET},
                "http": {"port": 0},
                "media": {"control_port": port, "workers": 1, "port_min": port_min, "port_max": port_min + 7},
            }
        )
    )
    try:
        result = subprocess.run(
            [*PBX, "media", "--config", str(config)], capture_output=True, text=True, timeout=60
        )
    finally:
        taken.close()
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"pbx media: media control port 127.0.0.1:{port} is already in use"
    )
