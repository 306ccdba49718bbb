"""Regenerate the listener/alerts/telephony tables of docs/configuration.md.

The settings are declared as data next to the code that reads them
(``SETTINGS`` tuples, gathered by ``canary.config.all_settings``); this script
writes them between the markers so the reference can never drift from the
code. ``tests/test_docs.py`` fails when the file is out of date.

    python scripts/gen_settings_doc.py          # rewrite docs/configuration.md
    python scripts/gen_settings_doc.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

BEGIN = "<!-- generated settings: begin (scripts/gen_settings_doc.py) -->"
END = "<!-- generated settings: end -->"
HAND_WRITTEN = ("registry.", "contacts.", "identities.")
DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def _default(value) -> str:
    if value is None or value == () or value == []:
        return "none"
    return f"`{value!r}`" if not isinstance(value, str) else f"`{value}`"


def render() -> str:
    from canary.config import all_settings

    groups: dict[str, list] = {}
    for setting in all_settings():
        if setting.name.startswith(HAND_WRITTEN):
            continue
        table = setting.name.rsplit(".", 1)[0]
        groups.setdefault(table, []).append(setting)
    out = [BEGIN, ""]
    for table, settings in groups.items():
        out += [f"### `[{table}]`", "", "| key | default | meaning |", "| --- | --- | --- |"]
        for s in settings:
            meaning = " ".join(s.help.split()).replace("|", "\\|")
            out.append(f"| `{s.name}` | {_default(s.default)} | {meaning} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def updated(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + render() + tail


def main(argv: list[str]) -> int:
    text = DOC.read_text(encoding="utf-8")
    new = updated(text)
    if "--check" in argv:
        return 0 if new == text else 1
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
