"""Dial patterns of outbound routes: which dialled numbers a route takes, and what it sends on.

Two forms, as administrators know them from Asterisk and from regular-expression dial plans:

    _9NXXNXXXXXX   a leading `_` makes an Asterisk-style pattern, matched against the whole number:
                   X any digit, Z 1-9, N 2-9, [1-5] or [137] one digit of a set, `.` one or more
                   characters, `!` zero or more; any other character stands for itself
    re:^00[1-9]    a regular expression (Python syntax), matched against the whole number
    112            neither: the number itself, exactly

`compile_pattern` refuses a pattern that does not compile with InvalidValue naming it; a route
is saved only with a pattern that compiles. `normalise` strips the route's leading digits and
prepends its prefix (`90612345678` stripped of 1 is `0612345678`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pbx_services.cluster.validation import InvalidValue

PATTERN_MAX_LENGTH = 128
REGEX_PREFIX = "re:"
ASTERISK_PREFIX = "_"
_ASTERISK_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}
_SET_MEMBER = re.compile(r"[0-9](?:-[0-9])?")
_LITERAL = re.compile(r"[0-9A-Za-z*#+]")


@dataclass(frozen=True, slots=True)
class DialPattern:
    text: str
    """The pattern as the administrator wrote it."""
    regex: re.Pattern[str]
    """Matched against the whole dialled number."""

    def matches(self, number: str) -> bool:
        return self.regex.fullmatch(number) is not None


def compile_pattern(text: str) -> DialPattern:
    """The pattern `text` compiled; InvalidValue naming the pattern and what is wrong with it."""
    if not text:
        raise InvalidValue("dial pattern is empty")
    if len(text) > PATTERN_MAX_LENGTH:
        raise InvalidValue(f"dial pattern {text[:40]!r}...: longer than {PATTERN_MAX_LENGTH} characters")
    if text.startswith(REGEX_PREFIX):
        source = text[len(REGEX_PREFIX):]
        if not source:
            raise InvalidValue(f"dial pattern {text!r}: the regular expression is empty")
        try:
            return DialPattern(text, re.compile(source))
        except re.error as exc:
            raise InvalidValue(f"dial pattern {text!r} does not compile: {exc}") from None
    if text.startswith(ASTERISK_PREFIX):
        return DialPattern(text, re.compile(_asterisk_regex(text)))
    if not all(_LITERAL.fullmatch(char) for char in text):
        raise InvalidValue(f"dial pattern {text!r}: a plain number has digits, letters, *, # and + only "
                           "(start an Asterisk-style pattern with _ and a regular expression with re:)")
    return DialPattern(text, re.compile(re.escape(text)))


def _asterisk_regex(text: str) -> str:
    body = text[len(ASTERISK_PREFIX):]
    if not body:
        raise InvalidValue(f"dial pattern {text!r}: nothing after the _")
    parts: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "[":
            end = body.find("]", index)
            if end < 0:
                raise InvalidValue(f"dial pattern {text!r} does not compile: '[' at {index + 1} is never "
                                   "closed")
            members = body[index + 1:end]
            if not members or _SET_MEMBER.sub("", members):
                raise InvalidValue(f"dial pattern {text!r} does not compile: [{members}] is not a set of "
                                   "digits and digit ranges such as [1-5] or [137]")
            parts.append(f"[{members}]")
            index = end + 1
            continue
        upper = char.upper()
        if upper in _ASTERISK_CLASSES:
            parts.append(_ASTERISK_CLASSES[upper])
        elif _LITERAL.fullmatch(char):
            parts.append(re.escape(char))
        else:
            raise InvalidValue(f"dial pattern {text!r} does not compile: {char!r} at {index + 1} is none of "
                               "X Z N [set] . ! or a digit")
        index += 1
    return "".join(parts)


def normalise(number: str, *, strip: int, prepend: str) -> str:
    """What a route sends to its trunk for the dialled `number`: `strip` leading characters
    off, then `prepend` in front ("90612345678", strip 2, prepend "+33" -> "+33612345678")."""
    return prepend + number[strip:]
