"""Every setting, command, option and seeder a user can meet is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from canary.cli.main import cli
from canary.config import all_settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, path + (name,))


def test_every_setting_is_documented():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [s.name for s in all_settings() if f"`{s.name}`" not in text]
    assert missing == []


COMMANDS = [(path, cmd) for path, cmd in _walk(cli) if path]


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_is_documented(path, command):
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert f"canary {' '.join(path)}" in text
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            longest = max(param.opts, key=len)
            assert longest in text, f"{' '.join(path)} {longest} is not in docs/cli.md"


def test_every_seeder_and_option_is_documented():
    from canary.planting.catalog import get_seeder_class

    # docs/seeders.md, plus one page per built-in system under docs/seeders/
    from canary.planting.catalog import seeder_names
    pages = [DOCS / "seeders.md", *sorted((DOCS / "seeders").glob("*.md"))]
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    for name in seeder_names():
        assert f"`{name}`" in text
        for option in get_seeder_class(name).options:
            assert f"`{option.name}`" in text, f"seeder {name} option {option.name} undocumented"


def test_generated_settings_tables_are_up_to_date():
    import importlib.util

    path = DOCS.parent / "scripts" / "gen_settings_doc.py"
    spec = importlib.util.spec_from_file_location("gen_settings_doc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert module.updated(text) == text, "run: python scripts/gen_settings_doc.py"


REPO = DOCS.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_PATH = re.compile(r"`((?:canary|listener|seeders|tests|bench|deploy|scripts)/[\w./-]+)`")


def _markdown_files():
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_code_paths_point_at_existing_files(page):
    """A moved module or page breaks the docs that name it: this finds it."""
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    for named in CODE_PATH.findall(text):
        if any(ch in named for ch in "*<>") or named.endswith("/"):
            candidate = REPO / named.rstrip("/")
            if named.endswith("/") and not candidate.exists():
                broken.append(named)
            continue
        if not (REPO / named).exists():
            broken.append(named)
    assert broken == []
