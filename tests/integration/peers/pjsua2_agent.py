"""A pjsua2 softphone in its own process, driven by JSON lines on stdin; events as JSON lines on stdout.

Each phone runs in a process of its own because pjsua2 allows one library instance per
process and aborts at exit if a Call object outlives it. Commands:

    {"cmd": "register"}                        -> {"event": "reg", "code": 200, "expires": N}
    {"cmd": "unregister"}
    {"cmd": "call", "uri": "sip:1002@..."}     -> {"event": "call_state", "state": "CONFIRMED", ...}
    {"cmd": "call", "uri": ..., "headers": {"Privacy": "id"}}  (extra headers in the INVITE)
    {"cmd": "answer", "code": 200}             (answers the ringing incoming call)
    {"cmd": "hold"} / {"cmd": "unhold"}        (re-INVITE with sendonly / sendrecv)
    {"cmd": "hangup"}
    {"cmd": "xfer_replaces", "call": 0, "dest": 1}
                                               (attended transfer: REFER on call 0 whose Refer-To
                                                replaces call 1, -> {"event": "xfer_status", ...})
    {"cmd": "xfer", "call": 0, "uri": "sip:1003@..."}
                                               (blind transfer: REFER on call 0 to the URI)
    {"cmd": "stats"}                           -> {"event": "stats", "rx_packets": N, "tx_packets": N}
    {"cmd": "dtmf", "digits": "123#"}          (RFC 4733 telephone-events)
    {"cmd": "inband", "digits": "2"}           (DTMF as tones in the audio: pjmedia's tone generator)
    {"cmd": "media_info"}                      -> {"event": "media_info", "remote_rtp": "ip:port",
                                                   "codec": "PCMU", "local_rtp": "ip:port", ...}
    {"cmd": "gap"}                             -> {"event": "gap", "longest_gap_ms": N, "rx_packets": N}
    {"cmd": "reset_gap"}
    {"cmd": "quit"}

Calls are numbered in the order they are made or arrive (`index` in their events; the last
one is what `answer`, `hangup`, `hold`, `dtmf`... act on), and every one is kept until the
phone quits. Incoming calls are reported as {"event": "incoming", "from": ...} and rung with 180
unless "auto_answer" is set in the start-up arguments. Received digits are reported as
{"event": "dtmf", "digit": "1"}. `ready` lists the codecs the phone offers.

With `--mwi` the account subscribes to its message summary (RFC 3842) once registered; each
NOTIFY is reported as {"event": "mwi", "state": 4, "body": "Messages-Waiting: yes..."} (the
state a pjsip_evsub_state: 4 active, 5 terminated).

Audio: the call hears the null capture device, or `--play FILE` (an 8 kHz mono 16-bit WAV,
looped); `--record FILE` writes what the phone receives from the call to a WAV, complete
once the phone has quit.

Audio gaps: from the moment the call is confirmed (or the last `reset_gap`), the agent
looks at the received RTP packet count on every turn of its loop (about every 10 ms) and
keeps the longest time without a new packet. `rx_packets` there counts across stream
restarts (a re-INVITE to a new media address restarts pjsua's stream and its counters).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time

import pjsua2 as pj


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.userAgent = "pjsua2-test-phone"
        config.medConfig.noVad = True
        config.logConfig.level = args.log_level
        config.logConfig.consoleLevel = args.log_level
        self.ep.libInit(config)
        transport_config = pj.TransportConfig()
        transport_config.port = args.port
        transport_config.boundAddress = args.bind
        kind = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        self.ep.transportCreate(kind, transport_config)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        # Codec ids look like "PCMU/8000/1"; priority 0 takes a codec out of the offer.
        # telephone-event is not a codec here: it is always offered. Without --codecs the
        # phone keeps pjsua2's own priorities, as a phone out of the box does.
        self.codecs: list[str] = []
        if args.codecs is None:
            enabled = [codec for codec in self.ep.codecEnum2() if codec.priority > 0]
            enabled.sort(key=lambda codec: -codec.priority)  # stable: the library's order on ties
            self.codecs = [codec.codecId for codec in enabled]
        else:
            wanted = [name.strip().upper() for name in args.codecs.split(",") if name.strip()]
            for codec in self.ep.codecEnum2():
                keep = codec.codecId.split("/")[0].upper() in wanted
                self.ep.codecSetPriority(codec.codecId, 200 if keep else 0)
                if keep:
                    self.codecs.append(codec.codecId)
        self.player: pj.AudioMediaPlayer | None = None
        if args.play:
            self.player = pj.AudioMediaPlayer()
            self.player.createPlayer(args.play)  # loops by default
        self.recorder: pj.AudioMediaRecorder | None = None
        if args.record:
            self.recorder = pj.AudioMediaRecorder()
            self.recorder.createRecorder(args.record)
        self.gap = GapMeter()
        self.account = Account(self)
        account_config = pj.AccountConfig()
        account_config.idUri = f"sip:{args.user}@{args.domain}"
        account_config.regConfig.registrarUri = f"sip:{args.server};transport={args.transport}"
        account_config.regConfig.registerOnAdd = False
        account_config.regConfig.timeoutSec = args.expires
        account_config.sipConfig.proxies.append(f"sip:{args.server};transport={args.transport};lr")
        account_config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
        account_config.natConfig.sipOutboundUse = 0
        account_config.mediaConfig.transportConfig.boundAddress = args.bind
        account_config.mwiConfig.enabled = args.mwi
        self.account.create(account_config)
        self.call: Call | None = None
        self.calls: list[Call] = []
        """Every call of the phone, by index."""
        self.tones: pj.ToneGenerator | None = None
        self.running = True

    def handle(self, command: dict[str, object]) -> None:
        name = command["cmd"]
        if name == "register":
            self.account.setRegistration(True)
        elif name == "unregister":
            self.account.setRegistration(False)
        elif name == "call":
            self.call = Call(self, self.account)
            param = pj.CallOpParam(True)
            for header_name, value in dict(command.get("headers") or {}).items():  # type: ignore[call-overload]
                header = pj.SipHeader()
                header.hName, header.hValue = str(header_name), str(value)
                param.txOption.headers.append(header)
            self.call.makeCall(str(command["uri"]), param)
        elif name == "xfer":
            self.calls[int(str(command["call"]))].xfer(str(command["uri"]), pj.CallOpParam(True))
        elif name == "xfer_replaces":
            transferred = self.calls[int(str(command["call"]))]
            replaced = self.calls[int(str(command["dest"]))]
            transferred.xferReplaces(replaced, pj.CallOpParam(True))
        elif name == "answer":
            assert self.call is not None
            param = pj.CallOpParam()
            param.statusCode = int(command.get("code", 200))  # type: ignore[arg-type]
            self.call.answer(param)
        elif name in ("hold", "unhold"):
            assert self.call is not None
            param = pj.CallOpParam(True)
            if name == "hold":
                self.call.setHold(param)
            else:
                param.opt.flag = pj.PJSUA_CALL_UNHOLD
                self.call.reinvite(param)
        elif name == "hangup":
            if self.call is not None and self.call.isActive():
                self.call.hangup(pj.CallOpParam(True))
        elif name == "stats":
            emit(event="stats", **self.stats())
        elif name == "dtmf":
            assert self.call is not None
            self.call.dialDtmf(str(command["digits"]))
        elif name == "inband":
            assert self.call is not None
            self.play_inband(str(command["digits"]))
        elif name == "media_info":
            emit(event="media_info", **self.media_info())
        elif name == "gap":
            emit(event="gap", longest_gap_ms=round(self.gap.longest * 1000), rx_packets=self.gap.total,
                 running=self.gap.running)
        elif name == "reset_gap":
            self.gap.reset(time.monotonic())
        elif name == "quit":
            self.running = False

    def play_inband(self, digits: str) -> None:
        """The digits as tones of 120 ms with 100 ms pauses, mixed into what the call sends."""
        assert self.call is not None
        if self.tones is None:
            self.tones = pj.ToneGenerator()
            self.tones.createToneGenerator(8000, 1)
            self.tones.startTransmit(self.call.getAudioMedia(-1))
        sequence = pj.ToneDigitVector()
        for key in digits:
            digit = pj.ToneDigit()
            digit.digit, digit.on_msec, digit.off_msec, digit.volume = key, 120, 100, 0
            sequence.append(digit)
        self.tones.playDigits(sequence)

    def stats(self) -> dict[str, int]:
        if self.call is None or not self.call.isActive():
            return {"rx_packets": 0, "tx_packets": 0}
        try:
            stat = self.call.getStreamStat(0)
        except pj.Error:
            return {"rx_packets": 0, "tx_packets": 0}
        return {"rx_packets": stat.rtcp.rxStat.pkt, "tx_packets": stat.rtcp.txStat.pkt}

    def media_info(self) -> dict[str, object]:
        """Where the phone sends its RTP and with which codec, as its SDP negotiation left it."""
        if self.call is None or not self.call.isActive():
            return {"active": False}
        try:
            stream = self.call.getStreamInfo(0)
            transport = self.call.getMedTransportInfo(0)
        except pj.Error as exc:
            return {"active": False, "reason": exc.info()}
        return {"active": True, "remote_rtp": stream.remoteRtpAddress,
                "remote_rtcp": stream.remoteRtcpAddress, "codec": stream.codecName,
                "clock_rate": stream.codecClockRate,
                "local_rtp": transport.localRtpName, "tx_pt": stream.txPt, "rx_pt": stream.rxPt,
                "tx_event_pt": stream.audTxEventPt, "rx_event_pt": stream.audRxEventPt}

    def _measure_gap(self) -> None:
        if self.call is None or not self.gap.running:
            return
        try:
            received = self.call.getStreamStat(0).rtcp.rxStat.pkt
        except pj.Error:
            return  # no stream right now (being re-created by a re-INVITE): no packet either
        self.gap.observe(received, time.monotonic())

    def run(self) -> None:
        emit(event="ready", port=self.args.port, codecs=self.codecs)
        buffered = b""
        stdin = sys.stdin.fileno()
        while self.running:
            self.ep.libHandleEvents(10)
            self._measure_gap()
            readable, _, _ = select.select([stdin], [], [], 0)
            if readable:
                chunk = os.read(stdin, 65536)
                if not chunk:
                    break
                buffered += chunk
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    if line.strip():
                        try:
                            self.handle(json.loads(line))
                        except pj.Error as exc:
                            emit(event="error", command=line.decode(), reason=exc.info())
        # Every Call, player and recorder must be gone before libDestroy(); deleting the
        # recorder is what completes its WAV header.
        self.tones = None
        self.call = None
        self.calls = []
        self.player = None
        self.recorder = None
        self.account.shutdown()
        self.ep.libDestroy()


class GapMeter:
    """The longest time without a newly received RTP packet while the meter runs."""

    def __init__(self) -> None:
        self.running = False
        self.longest = 0.0
        self.total = 0
        self._last_count = 0
        self._last_packet_at = 0.0

    def start(self, now: float) -> None:
        self.running = True
        self._last_count = 0
        self.reset(now)

    def reset(self, now: float) -> None:
        self.longest = 0.0
        self._last_packet_at = now

    def observe(self, count: int, now: float) -> None:
        if count < self._last_count:
            self._last_count = 0  # a new stream: its counters start again
        if count > self._last_count:
            self.total += count - self._last_count
            self._last_count = count
            self._last_packet_at = now
        self.longest = max(self.longest, now - self._last_packet_at)


class Account(pj.Account):
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        info = self.getInfo()
        emit(event="reg", code=prm.code, reason=prm.reason, expires=info.regExpiresSec)

    def onMwiInfo(self, prm: pj.OnMwiInfoParam) -> None:
        emit(event="mwi", state=int(prm.state), body=prm.rdata.wholeMsg.partition("\r\n\r\n")[2])

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Call(self.phone, self, prm.callId)
        self.phone.call = call
        info = call.getInfo()
        emit(event="incoming", remote_uri=info.remoteUri, call_id=info.callIdString, index=call.index)
        param = pj.CallOpParam()
        param.statusCode = 200 if self.phone.args.auto_answer else 180
        call.answer(param)


class Call(pj.Call):
    def __init__(self, phone: Phone, account: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.phone = phone
        self.index = len(phone.calls)
        phone.calls.append(self)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not self.phone.gap.running:
            self.phone.gap.start(time.monotonic())
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.phone.gap.running = False
        emit(event="call_state", state=info.stateText, code=info.lastStatusCode, reason=info.lastReason,
             remote_uri=info.remoteUri, call_id=info.callIdString, index=self.index)

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        emit(event="xfer_status", code=prm.statusCode, reason=prm.reason, final=prm.finalNotify,
             index=self.index)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        emit(event="dtmf", digit=prm.digit, method=prm.method)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                audio = self.getAudioMedia(index)
                # Connect the call to the (null) sound device so the conference bridge clocks RTP out.
                audio.startTransmit(self.phone.ep.audDevManager().getPlaybackDevMedia())
                if self.phone.player is not None:
                    self.phone.player.startTransmit(audio)
                else:
                    self.phone.ep.audDevManager().getCaptureDevMedia().startTransmit(audio)
                if self.phone.recorder is not None:
                    audio.startTransmit(self.phone.recorder)
        emit(event="media", active=any(m.status == pj.PJSUA_CALL_MEDIA_ACTIVE for m in info.media),
             local_hold=any(m.status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD for m in info.media),
             remote_hold=any(m.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD for m in info.media))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--server", required=True, help="host:port of the PBX")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind", default="127.0.0.1", help="the phone's address (SIP and RTP)")
    parser.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    parser.add_argument("--codecs", help="the codecs to offer, by name (PCMU,PCMA); without, pjsua2's own")
    parser.add_argument("--expires", type=int, default=300)
    parser.add_argument("--auto-answer", action="store_true")
    parser.add_argument("--mwi", action="store_true", help="subscribe to the account's message summary")
    parser.add_argument("--log-level", type=int, default=1)
    parser.add_argument("--play", help="an 8 kHz mono 16-bit WAV sent, looped, into every call")
    parser.add_argument("--record", help="a WAV file to write what the phone receives from its calls")
    Phone(parser.parse_args()).run()


if __name__ == "__main__":
    main()
