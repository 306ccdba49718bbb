"""HL7 v2 messages as text: escaping, building segments, reading them back.

Only the default delimiters are supported (``|`` field, ``^`` component,
``~`` repetition, ``\\`` escape, ``&`` sub-component): every French PAM
interface uses them. Values are escaped on the way in and unescaped on the
way out, so a name like ``O'Brien & Fils`` or an address holding ``|``
survives the trip.

Building: a field is given as plain text (one component), or as a sequence of
components where each component is text or a tuple of sub-components.
``Raw`` marks text that is already HL7 (e.g. repetitions built elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

FIELD_SEP = "|"
COMPONENT_SEP = "^"
REPETITION_SEP = "~"
ESCAPE_CHAR = "\\"
SUBCOMPONENT_SEP = "&"
ENCODING_CHARACTERS = "^~\\&"
SEGMENT_END = "\r"

# Escape sequences of HL7 v2.5 section 2.7; the escape character goes first.
_ESCAPES = (
    ("\\", "\\E\\"),
    ("|", "\\F\\"),
    ("^", "\\S\\"),
    ("&", "\\T\\"),
    ("~", "\\R\\"),
    ("\r", "\\X0D\\"),
    ("\n", "\\X0A\\"),
)
_UNESCAPES = {"E": "\\", "F": "|", "S": "^", "T": "&", "R": "~"}


class Raw(str):
    """Text that is already HL7 (delimiters meant as delimiters): not escaped."""


Component = Union[str, tuple[str, ...], None]
FieldValue = Union[str, Raw, Sequence[Component], None]


def escape(text: object) -> str:
    value = "" if text is None else str(text)
    for plain, escaped in _ESCAPES:
        value = value.replace(plain, escaped)
    return value


def unescape(text: str) -> str:
    if ESCAPE_CHAR not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        end = text.find(ESCAPE_CHAR, i + 1) if char == ESCAPE_CHAR else -1
        if end == -1:
            out.append(char)
            i += 1
            continue
        code = text[i + 1:end]
        if code in _UNESCAPES:
            out.append(_UNESCAPES[code])
        elif code.startswith("X") and len(code) > 1:
            try:
                out.append(bytes.fromhex(code[1:]).decode("latin-1"))
            except ValueError:
                out.append(text[i:end + 1])
        else:  # formatting codes (\.br\, \H\...) and unknown ones are kept as they are
            out.append(text[i:end + 1])
        i = end + 1
    return "".join(out)


def _trim(parts: list[str], sep: str) -> str:
    while parts and parts[-1] == "":
        parts.pop()
    return sep.join(parts)


def component(value: Component) -> str:
    if value is None:
        return ""
    if isinstance(value, Raw):
        return value
    if isinstance(value, tuple):
        return _trim([escape(v) for v in value], SUBCOMPONENT_SEP)
    return escape(value)


def field(value: FieldValue) -> str:
    """One field (one repetition): text, or components (text or sub-component tuples)."""
    if value is None:
        return ""
    if isinstance(value, Raw):
        return value
    if isinstance(value, str):
        return escape(value)
    return _trim([component(v) for v in value], COMPONENT_SEP)


def repeated(*values: FieldValue) -> Raw:
    """Repetitions of one field, empty ones left out."""
    return Raw(REPETITION_SEP.join(f for f in (field(v) for v in values) if f))


def segment(name: str, fields: dict[int, FieldValue]) -> str:
    """A segment from {field number: value}; numbers not given are empty.

    For MSH, numbering follows the standard: MSH-1 is the field separator and
    MSH-2 the encoding characters, both written by this function.
    """
    if name == "MSH":
        top = max(fields, default=2)
        values = [field(fields.get(n)) for n in range(3, top + 1)]
        return _trim(["MSH", ENCODING_CHARACTERS, *values], FIELD_SEP)
    top = max(fields, default=0)
    return _trim([name, *(field(fields.get(n)) for n in range(1, top + 1))], FIELD_SEP)


def message(*segments: str) -> str:
    return SEGMENT_END.join(segments) + SEGMENT_END


# -- reading -----------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    name: str
    fields: tuple[str, ...]  # raw (still escaped); fields[n] is field n

    def raw(self, number: int) -> str:
        return self.fields[number] if 0 < number < len(self.fields) else ""

    def repetitions(self, number: int) -> list[str]:
        raw = self.raw(number)
        return raw.split(REPETITION_SEP) if raw else []

    def get(self, number: int, comp: int = 1, sub: int = 1, rep: int = 0) -> str:
        """Unescaped value of field ``number``, repetition ``rep``, component, sub-component."""
        reps = self.repetitions(number)
        if rep >= len(reps):
            return ""
        return part(reps[rep], comp, sub)


def part(raw_field: str, comp: int = 1, sub: int = 1) -> str:
    """Unescaped component ``comp`` (1-based), sub-component ``sub``, of one repetition."""
    components = raw_field.split(COMPONENT_SEP)
    if comp > len(components):
        return ""
    subs = components[comp - 1].split(SUBCOMPONENT_SEP)
    return unescape(subs[sub - 1]) if sub <= len(subs) else ""


def components(raw_field: str) -> list[str]:
    """Every component of one repetition, raw (sub-components still joined)."""
    return raw_field.split(COMPONENT_SEP)


@dataclass(frozen=True)
class Message:
    segments: tuple[Segment, ...]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]


class ParseError(ValueError):
    """Text that is not an HL7 v2 message with the default delimiters."""


def parse(text: str) -> Message:
    lines = [line for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if line]
    if not lines or not lines[0].startswith("MSH"):
        raise ParseError("does not start with an MSH segment")
    head = lines[0]
    if len(head) < 8 or head[3] != FIELD_SEP or head[4:8] != ENCODING_CHARACTERS:
        raise ParseError("MSH does not use the default delimiters |^~\\&")
    segments = []
    for line in lines:
        parts = line.split(FIELD_SEP)
        name = parts[0]
        if name == "MSH":
            # Re-number so that fields[n] is MSH-n: MSH-1 is the separator itself.
            parts = ["MSH", FIELD_SEP, *parts[1:]]
        segments.append(Segment(name=name, fields=tuple(parts)))
    return Message(tuple(segments))
