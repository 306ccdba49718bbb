"""`canary audit SOURCE --separability`: can a classifier tell canaries from the site's patients?

The attacker's view: the whole patient table and its related tables, and
nothing else. ``separability(patients, is_canary)`` builds the features of
``canary/audit/features.py``, trains two classifiers an attacker would try
(a logistic regression, the one-line rules' big brother, and gradient-boosted
trees, which find thresholds and combinations), each cross-validated, and
reports the better one's ROC AUC with a bootstrap 95 % confidence interval
over its out-of-fold scores. The features that give canaries away most are
ranked by how well each one alone separates them (its own AUC, as far from
0.5 as possible): those are the one-line rules of an attacker, and each
comes with a fix.

0.5 means canaries cannot be told apart; 1.0 means every canary is found
with no false positive. ``audit.separability_threshold`` (default 0.65)
is where `canary audit` starts failing.

Whom canaries are compared with. Canaries are new patients by
construction: they are planted at the drip's pace (at most
``drip.max_share`` of the site's new patients), so "registered lately" is
true of every canary and of fifty times as many real patients. An attacker
cannot drop recent patients to drop canaries without dropping the real
ones; the question is whether a canary can be told from *the patients
registered in the same period*. So the classifiers (the AUC and its bar)
compare canaries with the site's patients registered between the first
and the last canary's registration (widened to the nearest registrations
when that period holds fewer than ``MIN_MATCHED_PER_CANARY`` per canary),
and the report also gives the AUC against a random sample of the whole
site, recency included, for what it is. The one-line rule bar is measured
on the whole site: "registered in the last months" is such a rule, and its
precision is what the drip pace bounds. When the seeder cannot date its
patients, both comparisons are the random sample.

Speed: real patients are subsampled to at most ``MAX_OTHERS`` (and at least
``OTHERS_PER_CANARY`` per canary): a few thousand comparisons say as much
as a hundred thousand, and a site of 100,000 patients is audited in seconds
(bench/bench_separability.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

import numpy as np

from canary.audit.features import Feature, FeatureMatrix, build_features, registration_stamp
from canary.audit.settings import DEFAULT_THRESHOLD
from canary.errors import CanaryError

MIN_CANARIES = 5  # fewer cannot be cross-validated meaningfully
MIN_OTHERS = 20
MAX_OTHERS = 5000
OTHERS_PER_CANARY = 50
MIN_MATCHED_PER_CANARY = 10  # the registration period is widened until it holds this many others per canary
FOLDS = 5
BOOTSTRAP = 500
TOP = 5


@dataclass(frozen=True, slots=True)
class Giveaway:
    feature: str
    kind: str
    auc: float  # this feature alone (>= 0.5: oriented the way that finds canaries)
    canaries: str  # what canaries show
    others: str  # what the site's other patients show
    fix: str


@dataclass
class SeparabilityReport:
    source: str
    patients: int  # patients read
    canaries: int  # of which canaries
    compared: int  # other patients compared by the classifiers (registered in the canaries' period)
    auc: float
    low: float  # 95 % confidence interval
    high: float
    model: str
    threshold: float
    giveaways: list[Giveaway] = field(default_factory=list)
    features: int = 0
    # The best one-line rule ("feature >= x" or "<= x") that still finds half the canaries:
    # its precision on the whole site (the bar: at most 0.2), and the feature.
    rule_precision: float = 0.0
    rule_feature: str = ""
    # Whom the classifiers compared canaries with: the site's patients registered from
    # `period_start` to `period_end` ("period"), or a random sample of the site ("site": the
    # seeder could not date its patients). `canary_share`: canaries among the patients
    # registered in that period (what the drip pace caps).
    comparison: str = "site"
    period_start: datetime | None = None
    period_end: datetime | None = None
    canary_share: float = 0.0
    # The best classifier against a random sample of the whole site, recency included.
    auc_site: float = 0.5
    model_site: str = "none"

    @property
    def failed(self) -> bool:
        return self.auc > self.threshold


def separability(source: str, patients: Sequence[Any], is_canary: Sequence[bool], *,
                 threshold: float = DEFAULT_THRESHOLD, seed: int = 0) -> SeparabilityReport:
    """Cross-validated ROC AUC of canaries against the site's other patients."""
    labels = np.asarray(is_canary, dtype=bool)
    canaries = int(labels.sum())
    others = len(labels) - canaries
    if canaries < MIN_CANARIES:
        raise CanaryError(f"source '{source}': {canaries} canaries found in the target, at least "
                          f"{MIN_CANARIES} are needed to measure separability: plant more first")
    if others < MIN_OTHERS:
        raise CanaryError(f"source '{source}': the target holds {others} patients besides the canaries, "
                          f"at least {MIN_OTHERS} are needed to learn what the site's patients look like")
    rng = np.random.default_rng(seed)
    keep = max(MIN_OTHERS, min(MAX_OTHERS, OTHERS_PER_CANARY * canaries))
    canary_index = np.flatnonzero(labels)
    site_index = _sample(np.flatnonzero(~labels), keep, rng)
    stamps = [registration_stamp(p.created) for p in patients]
    matched = _same_period(labels, stamps, keep, rng)
    report = SeparabilityReport(source, len(labels), canaries, len(site_index), 0.5, 0.5, 0.5,
                                "none", threshold)
    site = _matrix(patients, canary_index, site_index)
    report.features = len(site[0].features)
    if site[0].features:
        report.rule_precision, report.rule_feature = best_rule(site[0], site[1], others / max(1, len(site_index)))
        scores, report.model_site = _best_scores(site[0].values, site[1], seed)
        report.auc_site = _auc(site[1], scores)
    if matched is None:
        matrix, y, report.compared = site[0], site[1], len(site_index)
        report.auc, report.model = report.auc_site, report.model_site
        if not matrix.features:
            return report
    else:
        other_index, report.period_start, report.period_end, in_period = matched
        report.comparison, report.compared = "period", len(other_index)
        report.canary_share = canaries / max(1, canaries + in_period)
        matrix, y = _matrix(patients, canary_index, other_index)
        report.features = len(matrix.features)
        if not matrix.features:
            return report
        scores, report.model = _best_scores(matrix.values, y, seed)
        report.auc = _auc(y, scores)
    report.low, report.high = _bootstrap(y, scores, rng)
    report.giveaways = giveaways(matrix, y)
    return report


def _sample(index: np.ndarray, keep: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(index, keep, replace=False)) if len(index) > keep else index


def _matrix(patients: Sequence[Any], canary_index: np.ndarray,
            other_index: np.ndarray) -> tuple[FeatureMatrix, np.ndarray]:
    chosen = np.concatenate([canary_index, other_index])
    y = np.zeros(len(chosen), dtype=bool)
    y[:len(canary_index)] = True
    return build_features([patients[i] for i in chosen], population=patients), y


def _same_period(labels: np.ndarray, stamps: list[datetime | None], keep: int, rng: np.random.Generator):
    """The other patients registered in the canaries' period, or None when they cannot be dated.

    Returns (sampled indexes, period start, period end, how many others registered in it). A
    period holding too few (a burst planted in one second) is widened to the registrations
    nearest to it, as many as ``MIN_MATCHED_PER_CANARY`` per canary.
    """
    ours = [s for s, canary in zip(stamps, labels) if canary and s is not None]
    dated = [(i, s) for i, (s, canary) in enumerate(zip(stamps, labels)) if not canary and s is not None]
    if len(ours) * 2 < int(labels.sum()) or len(dated) < MIN_OTHERS:
        return None
    start, end = min(ours), max(ours)
    inside = [i for i, s in dated if start <= s <= end]
    wanted = min(len(dated), max(MIN_OTHERS, MIN_MATCHED_PER_CANARY * int(labels.sum())))
    if len(inside) < wanted:
        def distance(item):
            stamp = item[1]
            return 0.0 if start <= stamp <= end else min(abs((stamp - start).total_seconds()),
                                                         abs((stamp - end).total_seconds()))
        nearest = sorted(dated, key=distance)[:wanted]
        chosen = np.array(sorted(i for i, _ in nearest))
        start = min(start, min(s for _, s in nearest))
        end = max(end, max(s for _, s in nearest))
    else:
        chosen = np.array(inside)
    return _sample(chosen, keep, rng), start, end, len(inside)


def best_rule(matrix: FeatureMatrix, y: np.ndarray, others_scale: float) -> tuple[float, str]:
    """The most precise single-feature threshold rule with recall >= 0.5, as an attacker would write it.

    Others are a sample: their false positives count ``others_scale`` times each, so the
    precision is the one the rule would have on the whole site.
    """
    values = _impute(matrix.values, sentinel=True)
    best, name = 0.0, ""
    for index, feature in enumerate(matrix.features):
        column = values[:, index]
        median = float(np.median(column[y]))
        for hits in (column >= median, column <= median):
            found = int((hits & y).sum())
            if found * 2 < int(y.sum()):
                continue
            false = int((hits & ~y).sum()) * others_scale
            precision = found / (found + false)
            if precision > best:
                best, name = precision, feature.name
    return round(best, 3), name


def _best_scores(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = StratifiedKFold(n_splits=min(FOLDS, int(y.sum())), shuffle=True, random_state=seed)
    filled = _impute(x)
    models = {
        "logistic regression": (make_pipeline(StandardScaler(), LogisticRegression(
            max_iter=500, class_weight="balanced")), filled),
        "gradient-boosted trees": (HistGradientBoostingClassifier(
            # no class weights: the AUC only ranks, and weights send binning down a slow path
            max_iter=60, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=3, random_state=seed), _impute(x, sentinel=True)),
    }
    from threadpoolctl import threadpool_limits

    best: tuple[float, np.ndarray, str] | None = None
    for name, (model, data) in models.items():
        # One thread: the trees are small, and OpenMP threads waiting on a busy host cost more than they give.
        with threadpool_limits(limits=1):
            scores = cross_val_predict(model, data, y, cv=folds, method="predict_proba")[:, 1]
        auc = _auc(y, scores)
        if best is None or auc > best[0]:
            best = (auc, scores, name)
    return best[1], best[2]


def _impute(x: np.ndarray, *, sentinel: bool = False) -> np.ndarray:
    """NaN -> the column's median (a linear model needs numbers), or below its minimum (a tree then
    puts "not applicable" in a branch of its own)."""
    out = x.copy()
    empty = np.isnan(x).all(axis=0)
    safe = np.where(empty, 0.0, x)
    fill = (np.nanmin(safe, axis=0) - 1) if sentinel else np.nanmedian(safe, axis=0)
    rows, cols = np.where(np.isnan(out))
    out[rows, cols] = np.nan_to_num(fill[cols])
    return out


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties count half), 0.5 when one class is empty."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        return 0.5
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(average, counts)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _bootstrap(y: np.ndarray, scores: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95 % interval of the AUC, resampling canaries and others separately."""
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    values = []
    for _ in range(BOOTSTRAP):
        index = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        values.append(_auc(y[index], scores[index]))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def giveaways(matrix: FeatureMatrix, y: np.ndarray, top: int = TOP) -> list[Giveaway]:
    """The ``top`` features that alone separate canaries best, with what they show and the fix."""
    ranked = []
    filled_all = _impute(matrix.values, sentinel=True)
    for index, feature in enumerate(matrix.features):
        column, filled = matrix.values[:, index], filled_all[:, index]
        if np.isnan(column[y]).all():
            continue  # not applicable to canaries: the feature that says why (no rows, NULL) is ranked
        auc = _auc(y, filled)
        # Ties (many features reach 1.0 on a naive plant): the larger gap between the groups first.
        spread = float(filled.std()) or 1.0
        gap = abs(float(filled[y].mean() - filled[~y].mean())) / spread
        ranked.append((round(max(auc, 1 - auc), 3), gap, feature, column))
    ranked.sort(key=lambda item: (-item[0], -item[1], item[2].name))
    return [Giveaway(f.name, f.kind, auc, describe(f, column[y]), describe(f, column[~y]), fix_for(f))
            for auc, _gap, f, column in ranked[:top] if auc > 0.5]


_SHARES = {"null", "empty", "upper", "subsecond", "none", "same_second", "no_email", "no_phone"}


def describe(feature: Feature, values: np.ndarray) -> str:
    """What a group shows for a feature, in words ("40 % NULL", "median 3 rows")."""
    known = values[~np.isnan(values)]
    if not len(known):
        return "not applicable"
    kind = feature.kind
    if kind in _SHARES:
        word = {"null": "NULL", "empty": "''", "upper": "upper case", "subsecond": "with sub-second digits",
                "none": "with no row", "same_second": "in the registration's second",
                "no_email": "without email", "no_phone": "without phone"}[kind]
        return f"{100 * known.mean():.0f} % {word}"
    median = float(np.median(known))
    if kind in ("count", "domain", "block"):
        unit = {"count": "rows", "domain": "patients per domain", "block": "patients per block"}[kind]
        return f"median {math.expm1(median):.0f} {unit}"
    if kind == "age":
        return f"median {math.expm1(median):.0f} days old"
    if kind == "years":
        return f"median {median:.0f} years before the latest"
    if kind in ("delay", "first"):
        seconds = math.copysign(math.expm1(abs(median)), median)
        return f"median {_duration(seconds)} after registration"
    if kind == "hour":
        return f"median {int(median):02d}:{int(median % 1 * 60):02d}"
    if kind in ("share", "domain_recent", "block_recent"):
        return f"median {100 * median:.0f} %"
    return f"median {median:.3g}"


def _duration(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit, size in (("days", 86400), ("hours", 3600), ("min", 60)):
        if seconds >= size:
            return f"{sign}{seconds / size:.0f} {unit}"
    return f"{sign}{seconds:.0f} s"


def fix_for(feature: Feature) -> str:
    s = feature.subject
    fixes = {
        "null": f"fill {s} as the site does (NULL as often as the site's patients): map it, or let the "
                "seeder draw it from the site's values",
        "empty": f"write an empty {s} the way the site does ('' versus NULL), drawn from the site's habits",
        "upper": f"write {s} in the site's case, drawn per patient from its habits",
        "subsecond": f"write {s} with the application's precision (sub-second digits where it writes them)",
        "age": "spread plantings over months (`canary plant --over`, drip at the site's pace) so canaries "
               "are not all recent; let `canary drip run` add later events",
        "years": f"draw {s} from the site's own distribution (for birth dates: set identities.age_profile "
                 "to the site's age bands)",
        "hour": f"stamp {s} at the hours the site registers patients (drip plants in working hours)",
        "delay": f"set {s} after the registration with the site's own delay, not at the same moment",
        "share": f"draw {s} from the values the site's patients have, in their proportions (postcodes and "
                 "cities: the catchment learned from the site, see docs/drip.md; users, origins, doctors: "
                 "the site's pick list), not one constant nor values the site never uses",
        "count": f"give canaries rows in {s} at the site's rate (the seeder's footprint)",
        "none": f"every canary needs the {s} rows real patients have (the seeder's footprint)",
        "first": f"date the first {s} row after the registration with the site's delay",
        "same_second": f"do not write {s} in the same second as the registration",
        "domain": "spread canaries over more owned domains: lower contacts.max_per_email_domain and "
                  "add domains (docs/setup.md says how many)",
        "domain_recent": "fewer canaries per owned domain (contacts.max_per_email_domain), planted over "
                         "a longer period",
        "block": "spread canaries over more 10,000-number blocks: lower contacts.max_per_phone_block "
                 "and add numbers from other blocks to the pool",
        "block_recent": "fewer canaries per phone block (contacts.max_per_phone_block), planted over a "
                        "longer period",
        "no_email": "give canaries an email as often as the site's patients have one",
        "no_phone": "give canaries a phone as often as the site's patients have one",
    }
    return fixes.get(feature.kind, f"make {s} look like the site's patients")


def report_to_dict(report: SeparabilityReport) -> dict[str, Any]:
    return {
        "source": report.source, "patients": report.patients, "canaries": report.canaries,
        "compared": report.compared, "features": report.features, "model": report.model,
        "auc": round(report.auc, 4), "auc_low": round(report.low, 4), "auc_high": round(report.high, 4),
        "threshold": report.threshold, "failed": report.failed,
        "comparison": report.comparison,
        "period_start": report.period_start.isoformat() if report.period_start else None,
        "period_end": report.period_end.isoformat() if report.period_end else None,
        "canary_share": round(report.canary_share, 4),
        "auc_site": round(report.auc_site, 4), "model_site": report.model_site,
        "rule_precision": report.rule_precision, "rule_feature": report.rule_feature,
        "giveaways": [{"feature": g.feature, "kind": g.kind, "auc": g.auc, "canaries": g.canaries,
                       "others": g.others, "fix": g.fix} for g in report.giveaways],
    }
