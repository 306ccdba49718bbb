"""Skip a test whose outside requirement is missing, or fail it when CI requires it.

On a laptop a test that needs Chromium, the real application schemas or
``dig`` skips with the reason. CI must not go green that way: .ci/run sets
``CANARY_REQUIRE=browser,schemas,dig`` (and ``CANARY_REQUIRE_DB=1`` for the
database servers), and a requirement named there turns the skip into a
failure.
"""

from __future__ import annotations

import os

import pytest


def required(what: str) -> bool:
    """Whether CI declared ``what`` (browser, schemas, dig...) present."""
    names = {part.strip() for part in os.environ.get("CANARY_REQUIRE", "").split(",")}
    return what in names


def missing(what: str, reason: str) -> None:
    """Skip with ``reason``, or fail when CANARY_REQUIRE names ``what``."""
    if required(what):
        pytest.fail(f"{reason} (CANARY_REQUIRE={os.environ.get('CANARY_REQUIRE')} forbids skipping)")
    pytest.skip(reason)
