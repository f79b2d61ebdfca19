"""What a queue server says to its callers and agents (spoken by `appserver.sounds.Announcements`)."""

from __future__ import annotations

UNKNOWN_QUEUE = "There is no queue at this number. Goodbye."
NOBODY = "Sorry, nobody can take your call now. Please call again later. Goodbye."
WELCOME = "Thank you for calling. Please hold, the next available agent will answer."
CALLBACK_OFFER = "To be called back instead of holding, press 1."
CALLBACK_NUMBER = ("Enter the number to call you back at, then press the pound key. "
                   "Or press the pound key alone to be called back at this number.")
CALLBACK_KEPT = "Thank you. We will call you back when an agent is free. Goodbye."
LOGGED_IN = "You are logged in."
LOGGED_OUT = "You are logged out."
PAUSED = "You are paused."
UNPAUSED = "You are unpaused."
NOT_AN_AGENT = "You are not an agent of any queue."


def position(place: int, wait_minutes: int | None) -> str:
    """What a waiting caller hears: "You are caller number 2. Your estimated wait is about 3 minutes."."""
    text = "You are the next caller." if place == 1 else f"You are caller number {place}."
    if wait_minutes is not None:
        text += (" Your estimated wait is less than a minute." if wait_minutes < 1 else
                 f" Your estimated wait is about {wait_minutes} minute{'s' if wait_minutes > 1 else ''}.")
    return text
