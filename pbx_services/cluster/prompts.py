"""Prompt service: the announcements IVR menus play, imported from WAV files or spoken by espeak-ng.

Prompts are stored in the database in the prompt format (16-bit little-endian PCM, mono,
8000 Hz), so every IVR server of the cluster plays the same audio. Each belongs to a
tenant; a name is 1 to 64 letters, digits, `_`, `-` and `.`.
"""

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.audio_import import MAX_DURATION_SECONDS, PROMPT_SAMPLE_RATE, import_wav
from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.models import IvrMenu, Prompt
from pbx_services.cluster.models.ivr import PROMPT_NAME_MAX_LENGTH
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue

ESPEAK = "espeak-ng"
ESPEAK_TIMEOUT_SECONDS = 60
SOURCE_MAX_LENGTH = 255
SAMPLE_BYTES = 2

_NAME_RE = re.compile(rf"[A-Za-z0-9_.-]{{1,{PROMPT_NAME_MAX_LENGTH}}}")
_VOICE_RE = re.compile(r"[A-Za-z0-9_+-]{1,40}")


class SynthesizerMissing(InvalidValue):
    """espeak-ng is not installed, so no prompt can be spoken."""


def validate_name(value: str, *, kind: str) -> str:
    """A prompt's or a schedule's name (`kind` says which): 1..64 letters, digits, `_ - .`."""
    if not _NAME_RE.fullmatch(value):
        raise InvalidValue(f"{kind} name {value[:80]!r} must be 1 to {PROMPT_NAME_MAX_LENGTH} letters, "
                           "digits, '_', '-' or '.'")
    return value


@dataclass(frozen=True, slots=True)
class PromptInfo:
    name: str
    duration: float
    """Seconds."""
    source: str
    """Where it came from: "say: <text>" or "file: <file name>"."""


class PromptDao(Dao[Prompt]):
    model = Prompt
    searchable_columns = ("name", "source")

    def summaries(self, **criteria: Any) -> list[PromptInfo]:
        """The matching prompts, by name, without loading their audio."""
        statement = (select(Prompt.name, func.length(Prompt.audio), Prompt.source)
                     .where(*self._conditions(criteria)).order_by(Prompt.name))
        return [PromptInfo(name=name, duration=size / SAMPLE_BYTES / PROMPT_SAMPLE_RATE, source=source)
                for name, size, source in self.session.execute(statement)]

    def menus_using(self, prompt: Prompt) -> list[str]:
        """The numbers of the IVR menus that play `prompt`."""
        uses = or_(IvrMenu.greeting_id == prompt.id, IvrMenu.invalid_prompt_id == prompt.id,
                   IvrMenu.timeout_prompt_id == prompt.id)
        return list(self.session.scalars(select(IvrMenu.number).where(uses).order_by(IvrMenu.number)))


class PromptService:
    """Prompts of every tenant; `default_domain` names the tenant used when none is given.

    `espeak` is the speech synthesizer command `say` runs.
    """

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str, espeak: str = ESPEAK) -> None:
        self._sessions = sessions
        self._default_domain = default_domain
        self._espeak = espeak

    def add(self, name: str, audio: npt.NDArray[np.int16], source: str, *, tenant_domain: str | None = None,
            replace: bool = False) -> PromptInfo:
        """Store `audio` (mono int16 at 8000 Hz) as prompt `name`; AlreadyExists if there is one
        of that name, unless `replace`, which changes its audio in place (menus keep playing it)."""
        name = validate_name(name, kind="prompt")
        if audio.dtype != np.int16 or audio.ndim != 1:
            raise InvalidValue(f"prompt {name}: audio must be mono int16 samples, not {audio.dtype} "
                               f"of shape {audio.shape}")
        if not len(audio):
            raise InvalidValue(f"prompt {name}: no audio")
        if len(audio) > MAX_DURATION_SECONDS * PROMPT_SAMPLE_RATE:
            raise InvalidValue(f"prompt {name}: longer than {MAX_DURATION_SECONDS} seconds")
        source = source[:SOURCE_MAX_LENGTH]
        data = audio.astype("<i2").tobytes()
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            prompts = PromptDao(session=session)
            existing = prompts.find_by(tenant_id=tenant.id, name=name)
            if existing is None:
                try:
                    prompts.create(Prompt(tenant_id=tenant.id, name=name, audio=data, source=source))
                except IntegrityError:  # added by someone else since the check above
                    raise AlreadyExists(f"prompt {name} of {tenant.domain} already exists") from None
            elif replace:
                existing.audio, existing.source = data, source
            else:
                raise AlreadyExists(f"prompt {name} of {tenant.domain} already exists "
                                    "(replace it with --replace)")
        return PromptInfo(name=name, duration=len(audio) / PROMPT_SAMPLE_RATE, source=source)

    def add_file(self, name: str, path: Path, *, tenant_domain: str | None = None,
                 replace: bool = False) -> PromptInfo:
        """Import the WAV file at `path` (see `audio_import`); OSError if it cannot be read."""
        audio = import_wav(Path(path).read_bytes(), str(path))
        return self.add(name, audio, f"file: {Path(path).name}", tenant_domain=tenant_domain, replace=replace)

    def say(self, text: str, name: str, *, tenant_domain: str | None = None, voice: str = "en",
            replace: bool = False) -> PromptInfo:
        """Speak `text` with espeak-ng's `voice` and store it as prompt `name` (see `add`)."""
        validate_name(name, kind="prompt")
        if not text.strip():
            raise InvalidValue(f"prompt {name}: the text to say is empty")
        if not _VOICE_RE.fullmatch(voice):
            raise InvalidValue(f"voice {voice[:60]!r} is not an espeak-ng voice name (en, fr, en-us, ...)")
        audio = self._synthesize(text, voice)
        return self.add(name, audio, f"say: {text}", tenant_domain=tenant_domain, replace=replace)

    def list(self, tenant_domain: str | None = None) -> list[PromptInfo]:
        """The tenant's prompts, by name."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            return PromptDao(session=session).summaries(tenant_id=tenant.id)

    def delete(self, name: str, tenant_domain: str | None = None) -> None:
        """Delete the prompt; NotFound if there is none, InvalidValue while a menu plays it."""
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            prompts = PromptDao(session=session)
            prompt = _get_prompt(prompts, tenant.id, name, tenant.domain)
            menus = prompts.menus_using(prompt)
            if menus:
                raise InvalidValue(f"prompt {name} of {tenant.domain} is played by IVR "
                                   f"menu{'s' if len(menus) > 1 else ''} {', '.join(menus)}: "
                                   "change or delete them first")
            prompts.delete(prompt)

    def audio(self, tenant_id: int, name: str) -> npt.NDArray[np.int16]:
        """The prompt's samples (mono, 8000 Hz, read-only); NotFound if the tenant has no such prompt."""
        with self._sessions() as session:
            prompt = _get_prompt(PromptDao(session=session), tenant_id, name, f"tenant {tenant_id}")
            return np.frombuffer(prompt.audio, dtype="<i2").astype(np.int16, copy=False)

    def _synthesize(self, text: str, voice: str) -> npt.NDArray[np.int16]:
        return synthesize(text, voice, espeak=self._espeak)


def synthesize(text: str, voice: str = "en", *, espeak: str = ESPEAK) -> npt.NDArray[np.int16]:
    """`text` spoken by espeak-ng's `voice`, as 8 kHz mono samples; SynthesizerMissing without it."""
    command = shutil.which(espeak)
    if command is None:
        raise SynthesizerMissing(f"{espeak} is not installed: 'apt-get install espeak-ng' "
                                 "(as root) installs it")
    with tempfile.TemporaryDirectory(prefix="pbx-prompt-") as directory:
        wav = Path(directory) / "prompt.wav"
        # "--": a text starting with "-" is text, not an option.
        try:
            result = subprocess.run([command, "-v", voice, "-w", str(wav), "--", text],
                                    capture_output=True, text=True, timeout=ESPEAK_TIMEOUT_SECONDS,
                                    check=False)
        except subprocess.TimeoutExpired:
            raise InvalidValue(f"{espeak} took more than {ESPEAK_TIMEOUT_SECONDS} s "
                               "to speak the text") from None
        if result.returncode != 0 or not wav.exists():
            reason = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
            raise InvalidValue(f"{espeak} -v {voice} failed: {reason}")
        return import_wav(wav.read_bytes(), f"{espeak} output")


def _get_prompt(prompts: PromptDao, tenant_id: int, name: str, tenant: str) -> Prompt:
    prompt = prompts.find_by(tenant_id=tenant_id, name=name)
    if prompt is None:
        raise NotFound("Prompt", {"name": name, "tenant": tenant})
    return prompt

