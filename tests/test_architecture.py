"""The layers of docs/architecture.md hold: the import-linter contracts pass and no import circle exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("canary", "listener", "seeders")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_the_import_contracts_of_pyproject_are_kept():
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} missing: install the test extras (pip install -e '.[test]')")
    run = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    circles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                circles.add(" -> ".join((module, *chain)))
    assert sorted(circles) == []


def test_the_core_packages_named_in_the_contract_are_every_core_package():
    """A new package under canary/ must take its place in the layers, or nothing checks it."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    core = sorted(p.name for p in (ROOT / "canary").iterdir()
                  if (p / "__init__.py").exists() or (p.suffix == ".py" and p.stem != "__init__"))
    unlisted = [name.removesuffix(".py") for name in core if f'canary.{name.removesuffix(".py")}' not in text]
    assert unlisted == []
    systems = sorted(p.name for p in (ROOT / "seeders").iterdir() if (p / "__init__.py").exists())
    assert [s for s in systems if f"seeders.{s}" not in text] == []
