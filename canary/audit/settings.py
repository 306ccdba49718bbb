"""Settings of `canary audit`, declared apart so loading a configuration does not import numpy."""

from __future__ import annotations

from canary.config import Setting

DEFAULT_THRESHOLD = 0.65

SETTINGS: tuple[Setting, ...] = (
    Setting("audit.separability_threshold", DEFAULT_THRESHOLD,
            "ROC AUC above which `canary audit SOURCE --separability` fails (exit 1): 0.5 means canaries "
            "cannot be told from the site's patients, 1.0 that every canary is found with no false positive."),
)
