"""The read planner: properties over random span lists (hypothesis), and golden plans."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramio.core.errors import InvalidArgumentError
from paramio.core.planner import Span, plan_reads

spans_st = st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 300)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(spans=spans_st, max_gap=st.integers(0, 200), max_request=st.integers(1, 800))
def test_plan_covers_every_span_exactly_within_the_rules(
    spans: list[tuple[int, int]], max_gap: int, max_request: int
) -> None:
    plan = plan_reads(spans, max_gap=max_gap, max_request=max_request)
    # Every request is bounded, and requests are sorted and disjoint.
    for req in plan:
        assert 0 < req.length <= max_request
    for a, b in zip(plan, plan[1:], strict=False):
        assert a.end <= b.start
    # Reassembling each span from the pieces gives exactly its bytes, each byte once.
    got: dict[int, list[int]] = {i: [] for i in range(len(spans))}
    for req in plan:
        for p in req.pieces:
            assert 0 <= p.request_offset and p.request_offset + p.length <= req.length
            start = req.start + p.request_offset
            assert start == spans[p.span][0] + p.span_offset
            got[p.span].extend(range(start, start + p.length))
    for i, (offset, length) in enumerate(spans):
        assert sorted(got[i]) == list(range(offset, offset + length))
    # No byte read that no span wants, except gaps of at most max_gap between wanted bytes.
    wanted = sorted({b for o, n in spans for b in range(o, o + n)})
    read = [b for req in plan for b in range(req.start, req.end)]
    assert set(wanted) <= set(read)
    unwanted = sorted(set(read) - set(wanted))
    runs: list[list[int]] = []
    for b in unwanted:
        if runs and runs[-1][-1] == b - 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    assert all(len(r) <= max_gap for r in runs)
    assert all(r[0] > wanted[0] and r[-1] < wanted[-1] for r in runs)


@settings(max_examples=100, deadline=None)
@given(spans=spans_st, max_request=st.integers(1, 2000))
def test_spans_within_the_gap_and_size_share_a_request(spans: list[tuple[int, int]], max_request: int) -> None:
    """Neighbours a gap apart merge when the result fits: fewer requests than spans."""
    plan = plan_reads(spans, max_gap=10**9, max_request=10**9)
    live = [s for s in spans if s[1] > 0]
    assert len(plan) == (1 if live else 0)


def test_golden_plans() -> None:
    plan = plan_reads([(100, 10), (0, 10), (15, 5), (200, 50)], max_gap=5, max_request=64)
    assert [(r.start, r.end) for r in plan] == [(0, 20), (100, 110), (200, 250)]
    assert [(p.span, p.span_offset, p.request_offset, p.length) for p in plan[0].pieces] == [
        (1, 0, 0, 10),
        (2, 0, 15, 5),
    ]
    split = plan_reads([Span(10, 100)], max_gap=0, max_request=40)
    assert [(r.start, r.end) for r in split] == [(10, 50), (50, 90), (90, 110)]
    assert [r.pieces[0].span_offset for r in split] == [0, 40, 80]
    # A gap merge that would pass max_request does not happen.
    assert len(plan_reads([(0, 30), (35, 30)], max_gap=10, max_request=60)) == 2
    assert plan_reads([(0, 0), (5, 0)]) == []


@pytest.mark.parametrize(
    "bad", [{"spans": [(-1, 3)]}, {"spans": [(0, -3)]}, {"spans": [], "max_gap": -1}, {"spans": [], "max_request": 0}]
)
def test_bad_arguments(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        plan_reads(**bad)  # type: ignore[arg-type]
