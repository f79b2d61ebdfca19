"""What a meeting server says and plays: its announcements' texts, the entry and exit tones
(the spoken sentences, the tone stand-ins and the waiting music are `appserver.sounds`').
"""

from __future__ import annotations

from ..appserver.sounds import tone_sequence

ENTER_PIN = "Please enter the conference PIN, then press the pound key."
WRONG_PIN = "That PIN is not valid."
GOODBYE = "Goodbye."
UNKNOWN_ROOM = "There is no conference at this number. Goodbye."
ROOM_FULL = "This conference is full. Goodbye."
ROOM_LOCKED = "This conference is locked. Goodbye."
WAIT_FOR_MODERATOR = "Please wait. The conference will begin when the moderator joins."
MUTED = "You are muted."
UNMUTED = "You are unmuted."
LOCKED = "The conference is locked."
UNLOCKED = "The conference is unlocked."
ALL_MUTED = "Everyone else is muted."
ALL_UNMUTED = "Everyone else is unmuted."
ENDED = "The conference has ended. Goodbye."
RECORDED = "This conference is being recorded."
ONLY_YOU = "You are the only participant."
REMOVED = "You have been removed from the conference. Goodbye."
RECORDING_STARTED = "Recording has started."
RECORDING_STOPPED = "Recording has stopped."


def participants(count: int) -> str:
    return ONLY_YOU if count <= 1 else f"There are {count} participants."


ENTRY_TONE = tone_sequence([660.0, 880.0])
EXIT_TONE = tone_sequence([880.0, 660.0])
