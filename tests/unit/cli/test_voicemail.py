"""`pbx voicemail enable|list|messages|disable`, and `pbx user forward EXT --no-answer voicemail`."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbx_services.cluster.config import CONFIG_FILE_NAME, load_config
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.cluster.voicemail import VoicemailService

from .conftest import run


def test_enable_list_messages_and_disable(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = ("--data-dir", str(initialized))
    assert run(capsys, "user", "add", "1002", "--password=secret-1002", "--email", "bob@example.com",
               *directory)[0] == 0
    assert run(capsys, "user", "forward", "1002", "--no-answer", "voicemail", *directory) == (
        1, "", "pbx: forward of 1002 (no_answer) to voicemail: 1002 has no mailbox "
               "(pbx voicemail enable 1002 --pin PIN)\n")
    assert run(capsys, "voicemail", "enable", "1002", "--pin", "12", *directory) == (
        1, "", "pbx: PIN: 4 to 16 digits\n")

    assert run(capsys, "voicemail", "enable", "1002", "--pin", "4321", "--max-seconds", "60", *directory) == (
        0, "voicemail of 1002@pbx.local: email bob@example.com, greeting spoken, up to 100 messages of "
           "60 s\n", "")
    assert run(capsys, "user", "forward", "1002", "--no-answer", "voicemail", "--after", "5", *directory) == (
        0, "1002@pbx.local: no answer -> voicemail after 5 s\n", "")
    engine = create_engine_for(load_config(initialized / CONFIG_FILE_NAME, data_dir=initialized).database.url)
    VoicemailService(sessions=session_factory(engine), default_domain="pbx.local").add_message(
        "pbx.local", "1002", caller="1001", duration=3.25, path="pbx.local/1002/m.wav",
        received_at=datetime(2026, 12, 3, 10, 0, tzinfo=UTC))
    engine.dispose()

    status, out, _ = run(capsys, "voicemail", "list", *directory)
    assert status == 0 and out.splitlines() == [
        "EXTENSION  DOMAIN     NEW  SAVED  EMAIL            MAX MESSAGES  MAX SECONDS",
        "1002       pbx.local  1    0      bob@example.com  100           60"]
    status, out, _ = run(capsys, "voicemail", "messages", "1002", *directory)
    assert status == 0
    assert out.splitlines()[1].split()[:5] == ["1", "new", "1001", "2026-12-03T10:00:00+00:00", "3.2"]
    assert out.splitlines()[1].endswith("recordings/voicemail/pbx.local/1002/m.wav")
    assert run(capsys, "voicemail", "disable", "1002", *directory) == (
        0, "voicemail of 1002 removed (1 messages deleted)\n", "")
    assert run(capsys, "voicemail", "list", *directory) == (0, "no mailboxes\n", "")
    assert run(capsys, "user", "forward", "1002", *directory) == (0, "1002@pbx.local: no forwarding\n", "")
