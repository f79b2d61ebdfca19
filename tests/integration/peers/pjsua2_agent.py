"""A pjsua2 softphone in its own process, driven by JSON lines on stdin; events as JSON lines on stdout.

Each phone runs in a process of its own because pjsua2 allows one library instance per
process and aborts at exit if a Call object outlives it. Commands:

    {"cmd": "register"}                        -> {"event": "reg", "code": 200, "expires": N}
    {"cmd": "unregister"}
    {"cmd": "call", "uri": "sip:1002@..."}     -> {"event": "call_state", "state": "CONFIRMED", ...}
    {"cmd": "answer", "code": 200}             (answers the ringing incoming call)
    {"cmd": "hold"} / {"cmd": "unhold"}        (re-INVITE with sendonly / sendrecv)
    {"cmd": "hangup"}
    {"cmd": "stats"}                           -> {"event": "stats", "rx_packets": N, "tx_packets": N}
    {"cmd": "quit"}

Incoming calls are reported as {"event": "incoming", "from": ...} and rung with 180
unless "auto_answer" is set in the start-up arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys

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
        transport_config.boundAddress = "127.0.0.1"
        kind = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        self.ep.transportCreate(kind, transport_config)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        for codec in self.ep.codecEnum2():
            keep = any(codec.codecId.upper().startswith(c.upper()) for c in args.codecs.split(","))
            self.ep.codecSetPriority(codec.codecId, 200 if keep else 0)
        self.account = Account(self)
        account_config = pj.AccountConfig()
        account_config.idUri = f"sip:{args.user}@{args.domain}"
        account_config.regConfig.registrarUri = f"sip:{args.server};transport={args.transport}"
        account_config.regConfig.registerOnAdd = False
        account_config.regConfig.timeoutSec = args.expires
        account_config.sipConfig.proxies.append(f"sip:{args.server};transport={args.transport};lr")
        account_config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
        account_config.natConfig.sipOutboundUse = 0
        account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        self.account.create(account_config)
        self.call: Call | None = None
        self.running = True

    def handle(self, command: dict[str, object]) -> None:
        name = command["cmd"]
        if name == "register":
            self.account.setRegistration(True)
        elif name == "unregister":
            self.account.setRegistration(False)
        elif name == "call":
            self.call = Call(self, self.account)
            self.call.makeCall(str(command["uri"]), pj.CallOpParam(True))
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
        elif name == "quit":
            self.running = False

    def stats(self) -> dict[str, int]:
        if self.call is None or not self.call.isActive():
            return {"rx_packets": 0, "tx_packets": 0}
        try:
            stat = self.call.getStreamStat(0)
        except pj.Error:
            return {"rx_packets": 0, "tx_packets": 0}
        return {"rx_packets": stat.rtcp.rxStat.pkt, "tx_packets": stat.rtcp.txStat.pkt}

    def run(self) -> None:
        emit(event="ready", port=self.args.port)
        buffered = b""
        stdin = sys.stdin.fileno()
        while self.running:
            self.ep.libHandleEvents(10)
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
        self.call = None  # every Call must be gone before libDestroy()
        self.account.shutdown()
        self.ep.libDestroy()


class Account(pj.Account):
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        info = self.getInfo()
        emit(event="reg", code=prm.code, reason=prm.reason, expires=info.regExpiresSec)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Call(self.phone, self, prm.callId)
        self.phone.call = call
        info = call.getInfo()
        emit(event="incoming", remote_uri=info.remoteUri, call_id=info.callIdString)
        param = pj.CallOpParam()
        param.statusCode = 200 if self.phone.args.auto_answer else 180
        call.answer(param)


class Call(pj.Call):
    def __init__(self, phone: Phone, account: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.phone = phone

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        emit(event="call_state", state=info.stateText, code=info.lastStatusCode, reason=info.lastReason,
             remote_uri=info.remoteUri, call_id=info.callIdString)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                audio = self.getAudioMedia(index)
                # Connect the call to the (null) sound device so the conference bridge clocks RTP out.
                audio.startTransmit(self.phone.ep.audDevManager().getPlaybackDevMedia())
                self.phone.ep.audDevManager().getCaptureDevMedia().startTransmit(audio)
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
    parser.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    parser.add_argument("--codecs", default="PCMU,PCMA")
    parser.add_argument("--expires", type=int, default=300)
    parser.add_argument("--auto-answer", action="store_true")
    parser.add_argument("--log-level", type=int, default=1)
    Phone(parser.parse_args()).run()


if __name__ == "__main__":
    main()
