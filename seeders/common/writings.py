"""Which of the usual writings a host used for a value, so a canary can use the same."""

from __future__ import annotations

from canary.phones import formats, to_e164


def phone_style(value: str) -> str | None:
    """The canary.phones.formats style ``value`` is written in ("spaced", "international"...), or None."""
    e164 = to_e164(value)
    if e164 is None or not e164.startswith("+33") or len(e164) != 12:
        return None
    return next((style for style, text in formats(e164).items() if text == value), None)
