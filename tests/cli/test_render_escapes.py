"""Text written by attackers (an SMTP RCPT, a User-Agent) reaches `canary hits` and `canary alerts`:
a terminal must never act on it (retitle the window, hide rows, reverse text)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from canary.cli import render
from canary.hits.hit import Channel, Classification, Hit
from canary.model import TokenKind

HOSTILE = "evil\x1b]0;owned\x07\x1b[2K\rfake row\n\x9b31m\u202egnp.exe\u2028"


def hit(value: str) -> Hit:
    return Hit(id=1, canary_id=None, source=None, channel=Channel.SMTP, kind=TokenKind.EMAIL, value=value,
               remote="203.0.113.9", at=datetime(2025, 3, 14, tzinfo=timezone.utc),
               classification=Classification.UNMATCHED, evidence={"rcpt": value})


def test_every_control_character_is_escaped():
    assert render.escape_controls(HOSTILE) == (
        "evil\\x1b]0;owned\\x07\\x1b[2K\\x0dfake row\\x0a\\x9b31m\\u202egnp.exe\\u2028")
    assert render.escape_controls("Hélène Müller-Ōe, 12 rue d'Été") == "Hélène Müller-Ōe, 12 rue d'Été"


def test_hits_as_a_table_print_no_control_character(capsys):
    render.hits([hit(HOSTILE)], as_json=False)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 2  # the header and one row: no forged row
    assert not any(ch in out for ch in "\x1b\x07\r\x9b\u202e\u2028")
    assert "\\x1b]0;owned" in lines[1]


def test_hits_as_json_keep_the_value_and_print_no_control_character(capsys):
    render.hits([hit(HOSTILE)], as_json=True)
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\r\x9b\u202e\u2028")
    assert json.loads(out)[0]["value"] == HOSTILE  # escaped for the terminal, exact for scripts
