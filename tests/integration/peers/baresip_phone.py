"""A baresip 1.0 softphone run headless as a real SIP peer, driven over its ctrl_tcp socket.

Each phone gets a config directory of its own in a temporary directory. baresip listens on
127.0.0.1 only (SIP on `port`, and TLS on `port + 1`, which it always opens: give phones ports
two apart), sends a WAV file as its microphone (aufile) and records the decoded received
stream with sndfile, so a test can assert on what this phone heard.

Control is the ctrl_tcp module: netstring-framed JSON both ways.

    -> {"command": "dial", "params": "sip:1002@127.0.0.1:5060", "token": "3"}
    <- {"response": true, "ok": true, "data": "...", "token": "3"}
    <- {"event": true, "class": "call", "type": "CALL_ESTABLISHED", "accountaor": "sip:1001@...",
        "direction": "outgoing", "peeruri": "sip:1002@...", "id": "...", "param": "..."}

Event types seen: REGISTERING, REGISTER_OK, REGISTER_FAIL, UNREGISTERING (class "register");
CALL_INCOMING, CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED (param: the reason, e.g.
"404 Not Found"), CALL_RTCP (class "call"); CALL_LOCAL_SDP, CALL_REMOTE_SDP, CALL_RTPESTAB,
AUDIO_ERROR (class "other").

What baresip 1.0.0 does that shapes this class:
- ctrl_tcp sends events only to its newest connection: keep the one this class opens.
- An account from the `accounts` file registers at start-up, before the control connection can
  exist, so its REGISTER_OK would be lost; and the commands have no "register". So no account
  is configured at start and `register()` creates the user agent with `uanew`.
- With answermode=auto there is no CALL_INCOMING event: the call goes straight to
  CALL_ESTABLISHED.
- aufile ends the call (AUDIO_ERROR "end of file", then CALL_CLOSED) when the WAV ends; the
  generated tone lasts TONE_SECONDS. aufile does not resample: the WAV must be 8 kHz mono 16-bit.
- sndfile names its files dump-<local time to the second>-dec.wav (received, decoded) and
  -enc.wav (sent); it writes the WAV sizes only when the call ends, so during a call the samples
  are counted from the file size. It writes only what arrives: no RTP, no samples.
- Commands answer "ok": true even when they do nothing (accept with no incoming call); outcomes
  show as events.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

from tests.integration.conftest import free_port

BARESIP = "/usr/bin/baresip"
MODULE_PATH = "/usr/lib/baresip/modules"
SAMPLE_RATE = 8000
TONE_HZ = 1000
TONE_SECONDS = 120
CODEC_MODULES = {"PCMU": "g711.so", "PCMA": "g711.so", "G722": "g722.so", "OPUS": "opus.so"}
"""The codecs a phone may be given, and the module of each (baresip resamples aufile's 8 kHz)."""
CODEC_IDS = {"G722": "G722/16000/1", "OPUS": "opus/48000/2"}
"""How `audio_codecs` names a codec whose sampling rate is not 8000 Hz (it assumes 8000/1)."""
STATUS_LINE = re.compile(r"^\[\d+:\d\d:\d\d\] audio=")  # printed ten times a second during a call


class BaresipPhone:
    def __init__(self, *, user: str, password: str, server: str, port: int, domain: str | None = None,
                 transport: str = "udp", codecs: str = "PCMU,PCMA", auto_answer: bool = False,
                 audio_file: Path | None = None) -> None:
        """`server` is the registrar/proxy's host:port; `port` this phone's SIP port (and TLS on port + 1)."""
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be udp or tcp, not {transport!r}")
        wanted = [c.strip() for c in codecs.split(",") if c.strip()]
        unsupported = {c.upper() for c in wanted} - set(CODEC_MODULES)
        if unsupported:
            raise ValueError(f"codecs {sorted(unsupported)} not supported; only {sorted(CODEC_MODULES)}")
        codec_modules = "".join(f"module\t\t\t{module}\n"
                                for module in dict.fromkeys(CODEC_MODULES[c.upper()] for c in wanted))
        if audio_file is not None:
            check_source_wav(audio_file)
        self.user = user
        self.port = port
        self.aor = f"sip:{user}@{domain or server}"
        outbound = f"sip:{server}" + (";transport=tcp" if transport == "tcp" else "")
        answermode = "auto" if auto_answer else "manual"
        self.account = (f'<{self.aor}>;auth_pass={password};outbound="{outbound}";regint=300;'
                        f"audio_codecs={','.join(CODEC_IDS.get(c.upper(), c) for c in wanted)};"
                        f"answermode={answermode}")
        self.directory = Path(tempfile.mkdtemp(prefix=f"baresip-{user}-"))
        self.recordings = self.directory / "recordings"
        self.recordings.mkdir()
        if audio_file is None:
            audio_file = self.directory / "tone.wav"
            write_tone(audio_file)
        self.ctrl_port = free_port()
        (self.directory / "config").write_text(
            f"sip_listen\t\t127.0.0.1:{port}\n"
            "net_interface\t\t127.0.0.1\n"
            f"module_path\t\t{MODULE_PATH}\n"
            f"{codec_modules}"
            "module\t\t\taufile.so\n"
            "module\t\t\taubridge.so\n"
            "module\t\t\tsndfile.so\n"
            "module_app\t\tmenu.so\n"
            "module_app\t\tctrl_tcp.so\n"
            f"ctrl_tcp_listen\t\t127.0.0.1:{self.ctrl_port}\n"
            f"audio_source\t\taufile,{audio_file.resolve()}\n"
            # aufile's 8 kHz mono, resampled for a codec at another rate (Opus, G.722).
            "ausrc_srate\t\t8000\n"
            "ausrc_channels\t\t1\n"
            f"audio_player\t\taubridge,{user}\n"
            f"audio_alert\t\taubridge,{user}\n"
            f"snd_path\t\t{self.recordings}\n")
        self.log_path = self.directory / "baresip.log"
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.history: list[dict[str, Any]] = []
        self._responses: queue.Queue[dict[str, Any]] = queue.Queue()
        self._tokens = count(1)
        self._send_lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._registered = False
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen([BARESIP, "-f", str(self.directory)], stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
        try:
            self._socket = self._connect(timeout=10)
        except BaseException:
            self.close()
            raise
        self._reader = threading.Thread(target=self._read, args=(self._socket,), daemon=True)
        self._reader.start()

    def _connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"baresip {self.user} exited with {self._process.returncode}:\n"
                                   + self.log_tail())
            try:
                return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"baresip {self.user}: no ctrl_tcp on port {self.ctrl_port} in "
                                       f"{timeout} s:\n" + self.log_tail()) from None
                time.sleep(0.05)

    def _read(self, connection: socket.socket) -> None:
        connection.settimeout(None)
        buffered = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffered += chunk
            while b":" in buffered:
                length, _, rest = buffered.partition(b":")
                size = int(length)
                if len(rest) < size + 1:
                    break
                message = json.loads(rest[:size])
                buffered = rest[size + 1:]  # drop the netstring's trailing ","
                (self._responses if message.get("response") else self.events).put(message)

    def send(self, command: str, params: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """Run a menu command (`help` lists them) and return baresip's response."""
        if self._socket is None:
            raise RuntimeError(f"baresip {self.user} is closed")
        token = str(next(self._tokens))
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        with self._send_lock:
            self._socket.sendall(b"%d:%s," % (len(body), body))
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = self._responses.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"baresip {self.user}: no response to {command!r} in {timeout} s:\n"
                                   + self.log_tail()) from None
            if response.get("token") == token:
                return response

    def wait_for(self, event: str | tuple[str, ...],
                 predicate: Callable[[dict[str, Any]], bool] = lambda e: True,
                 timeout: float = 10.0) -> dict[str, Any]:
        """The next event of that type (or one of those types) matching `predicate`.

        Events read while waiting are kept in `history`, matched or not; they are not seen again.
        """
        types = (event,) if isinstance(event, str) else event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"phone {self.user}: no {event} event in {timeout} s; saw "
                                   f"{[e.get('type') for e in self.history]}\n" + self.log_tail())
            try:
                item = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.history.append(item)
            if item.get("type") in types and predicate(item):
                return item

    def register(self, timeout: float = 10.0) -> dict[str, Any]:
        """Create the user agent and wait for its REGISTER_OK or REGISTER_FAIL event (returned)."""
        if self._registered:
            self.send("uadel", self.aor)
        self.send("uanew", self.account)
        self._registered = True
        return self.wait_for(("REGISTER_OK", "REGISTER_FAIL"), timeout=timeout)

    def call(self, uri: str) -> dict[str, Any]:
        return self.send("dial", uri)

    def answer(self) -> dict[str, Any]:
        return self.send("accept")

    def hangup(self) -> dict[str, Any]:
        return self.send("hangup")

    def received_wav(self) -> Path | None:
        """sndfile's recording of the decoded received audio of the current or last call."""
        recordings = sorted(self.recordings.glob("*-dec.wav"), key=lambda p: (p.stat().st_mtime, p.name))
        return recordings[-1] if recordings else None

    def received_audio_frames(self) -> int:
        """Samples received and decoded in the current or last call (8,000 a second for G.711)."""
        path = self.received_wav()
        return 0 if path is None else wav_frames(path)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        kept = [line for line in re.split(r"[\r\n]+", text) if line and not STATUS_LINE.match(line)]
        return "\n".join(kept[-lines:])

    def close(self) -> None:
        """Stop baresip and remove its directory (and the recordings: read them before).

        On SIGTERM baresip unregisters, then exits (about 1.5 s); a second SIGTERM makes it exit at
        once, for a registrar that no longer answers.
        """
        for grace in (3.0, 5.0):
            if self._process.poll() is None:
                self._process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=grace)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        shutil.rmtree(self.directory, ignore_errors=True)


def write_tone(path: Path, seconds: int = TONE_SECONDS) -> None:
    """An 8 kHz mono 16-bit WAV of a 1 kHz sine at half scale."""
    period = SAMPLE_RATE // TONE_HZ
    cycle = b"".join(struct.pack("<h", round(16384 * math.sin(2 * math.pi * i / period)))
                     for i in range(period))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(cycle * (seconds * TONE_HZ))


def check_source_wav(path: Path) -> None:
    with wave.open(str(path), "rb") as source:
        shape = (source.getframerate(), source.getnchannels(), source.getsampwidth())
    if shape != (SAMPLE_RATE, 1, 2):
        raise ValueError(f"{path}: aufile needs an 8000 Hz mono 16-bit WAV, not "
                         f"{shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit")


def wav_frames(path: Path) -> int:
    """Frames in a WAV file, also while sndfile is still writing it (its sizes are 0 until it closes)."""
    file_size = path.stat().st_size
    with path.open("rb") as wav:
        header = wav.read(4096)
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    block_align = 2
    offset = 12
    while offset + 8 <= len(header):
        chunk_id = header[offset:offset + 4]
        size = int.from_bytes(header[offset + 4:offset + 8], "little")
        body = offset + 8
        if chunk_id == b"fmt ":
            block_align = struct.unpack_from("<H", header, body + 12)[0]
        elif chunk_id == b"data":
            available = file_size - body
            return (size if 0 < size <= available else available) // block_align
        offset = body + size + (size & 1)
    return 0


def tone_frequency(path: Path) -> tuple[float, float]:
    """(frequency from zero crossings, RMS) of a finished 16-bit mono WAV."""
    with wave.open(str(path), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
    samples = memoryview(frames).cast("h")
    crossings = sum(1 for a, b in zip(samples, samples[1:], strict=False) if (a < 0) != (b < 0))
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return crossings / 2 / (len(samples) / SAMPLE_RATE), rms


def assert_heard_the_tone(phone: BaresipPhone) -> None:
    """The phone's last call recording holds the 1 kHz tone the other phone sent, loud enough."""
    path = phone.received_wav()
    assert path is not None
    frequency, rms = tone_frequency(path)
    assert abs(frequency - TONE_HZ) < 50, f"{phone.user} heard {frequency:.0f} Hz"
    assert rms > 5000, f"{phone.user} heard RMS {rms:.0f}"
