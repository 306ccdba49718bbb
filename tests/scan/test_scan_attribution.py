"""Leak window, completeness and "holds more" on constructed cases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from support import leakgen
from canary.hits.hit import Channel, Observation
from canary.hits.sink import RegistryHitSink
from canary.model import CanaryStatus, TokenKind
from canary.registry import Registry
from canary.registry.scanstore import Timeline, UseSummary
from canary.scan.attribution import analyse, wilson
from canary.scan.service import scan
from canary.hits.tokenindex import TokenIndex

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def tl(cid, day, batch="b1", retired_day=None, status=CanaryStatus.PLANTED):
    return Timeline(cid, "src", batch, status, T0, T0 + day * DAY if day is not None else None,
                    T0 + retired_day * DAY if retired_day is not None else None)


def test_window_is_newest_found_to_first_later_absent():
    timeline = [tl(1, 0), tl(2, 10), tl(3, 20, "b2"), tl(4, 30, "b2"), tl(5, 40, "b3")]
    a = analyse("src", {1, 2, 3}, timeline, {})
    assert (a.window.after, a.window.after_canary) == (T0 + 20 * DAY, 3)
    assert (a.window.before, a.window.before_canary) == (T0 + 30 * DAY, 4)
    assert "unless the export left that row out" in a.window.caveat
    assert [(b.label, b.found, b.planted) for b in a.batches] == [("b1", 2, 2), ("b2", 1, 2), ("b3", 0, 1)]


def test_window_open_when_nothing_was_planted_later_and_closed_by_a_retirement():
    timeline = [tl(1, 0, retired_day=50), tl(2, 10), tl(3, 20)]
    a = analyse("src", {1, 2, 3}, timeline, {})
    assert a.window.before is None
    assert (a.window.removed_before, a.window.removed_canary) == (T0 + 50 * DAY, 1)
    assert a.retired_found == [1]


def test_completeness_counts_canaries_present_at_the_window_start():
    # 10 planted before day 20, one retired on day 5 (gone before the window), 2 after.
    timeline = [tl(i, i) for i in range(1, 11)] + [tl(11, 30), tl(12, 40)]
    timeline[0] = tl(1, 1, retired_day=5)
    found = {2, 3, 4, 5, 10}
    a = analyse("src", found, timeline, {})
    c = a.completeness
    assert (c.found, c.expected) == (5, 9)
    share, low, high = wilson(5, 9)
    assert c.share == pytest.approx(5 / 9) and (c.low, c.high) == (low, high)
    assert low == pytest.approx(0.2667, abs=1e-3) and high == pytest.approx(0.8112, abs=1e-3)


def test_wilson_interval_known_values():
    assert wilson(0, 10)[1:] == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10)[1:] == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(50, 100)[1:] == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson(0, 0) is None


def test_holds_more_lists_used_canaries_absent_from_the_file():
    timeline = [tl(1, 0), tl(2, 1), tl(3, 2), tl(4, 3)]
    use = {2: UseSummary(2, 3, T0, T0 + DAY, ("smtp", "http")), 3: UseSummary(3, 1, T0, T0, ("dns",)),
           4: UseSummary(4, 1, T0, T0, ("sms",))}
    a = analyse("src", {1, 3}, timeline, use)
    assert [(h.canary_id, h.hits, h.channels) for h in a.holds_more] == [(2, 3, ("smtp", "http")), (4, 1, ("sms",))]


@pytest.fixture
def world(tmp_path):
    with Registry.open(f"sqlite:///{tmp_path / 'r.db'}", create=True) as registry:
        w = leakgen.World(registry, seed=3)
        w.source("lis")
        w.source("other")
        w.plant("lis", 6, T0, "lis-jan")
        w.plant("lis", 4, T0 + 60 * DAY, "lis-mar")
        w.plant("other", 3, T0 + 10 * DAY)
        yield w


def test_through_the_registry_with_hits_and_a_retired_canary(world, tmp_path):
    lis = world.by_source["lis"]
    # Canary 2 was used (an email to it) and is absent from the file; canary 1 was retired
    # after the leak: still matched, and it bounds the window.
    sink = RegistryHitSink(world.registry, TokenIndex(world.registry))
    sink.record(Observation(Channel.SMTP, TokenKind.EMAIL, world.identity(lis[1]).email, "198.51.100.7"))
    sink.record(Observation(Channel.SMTP, TokenKind.EMAIL, world.identity(lis[2]).email, "10.0.0.1",
                            evidence={"scan": {}}))  # recorded by an earlier scan: not a use
    world.registry.set_status(lis[0], CanaryStatus.RETIRED, "test")
    in_file = [lis[0], lis[3], lis[4], lis[5], lis[6]]  # January batch but 1 and 2, and one of March
    rows = [leakgen.canary_row(world.identity(c), __import__("random").Random(c)) for c in in_file]
    (tmp_path / "leak.csv").write_text(leakgen.to_csv(rows), encoding="utf-8")
    report = scan(world.registry, [tmp_path / "leak.csv"], jobs=1, use_cache=False)
    (finding,) = report.sources
    a = finding.analysis
    assert a.found == sorted(in_file) and a.planted == 10
    # One of the March batch's four canaries (planted a minute apart, one event): the file was taken
    # after that batch and nothing was planted since; all ten canaries count for completeness.
    assert a.window.after_canary == lis[6] and a.window.before_canary is None
    assert a.window.after_event.canary_ids == tuple(lis[6:10]) and a.window.after_event.found == 1
    assert a.window.removed_canary == lis[0]
    assert [h.canary_id for h in a.holds_more] == [lis[1]]
    assert (a.completeness.found, a.completeness.expected, a.completeness.events) == (5, 10, 2)


def batch(first_id, count, day, label, spacing=timedelta(milliseconds=25)):
    return [Timeline(first_id + i, "src", label, CanaryStatus.PLANTED, T0, T0 + day * DAY + i * spacing, None)
            for i in range(count)]


def test_a_partial_file_of_one_batch_is_dated_by_the_batch_and_counted_against_all_of_it():
    """10 of a batch's 40 canaries (a sample posted to prove a sale): 25 %, not 100 %."""
    timeline = batch(1, 40, 10, "b1") + batch(41, 40, 40, "b2")
    found = set(range(1, 40, 4))  # ten canaries scattered through the batch
    a = analyse("src", found, timeline, {})
    assert a.window.after_event.batch == "b1" and a.window.after_event.found == 10
    assert a.window.before == T0 + 40 * DAY and a.window.before_canary == 41  # the next batch, not canary 38
    c = a.completeness
    assert (c.found, c.expected, c.events) == (10, 40, 1)
    assert c.share == pytest.approx(0.25) and c.high < 0.45


def test_drip_moments_are_events_of_their_own():
    """One drip batch planted one canary a day: each moment bounds the window by itself."""
    timeline = [tl(i, i, "drip") for i in range(1, 11)]
    a = analyse("src", {1, 2, 3, 4}, timeline, {})
    assert (a.window.after_canary, a.window.before_canary) == (4, 5)
    assert (a.completeness.found, a.completeness.expected, a.completeness.events) == (4, 4, 4)
