"""The usage page's per-namespace chart stays bounded for an account with many namespaces: the
largest ones get a bar each, the rest share one (the table below lists every namespace)."""

from __future__ import annotations

from controlplane.console._billing import CHART_NAMESPACES, _namespace_chart


def test_the_chart_shows_the_largest_namespaces_and_the_rest_as_one_bar() -> None:
    totals = {f"ns{n:04d}.acct": 1000 + n for n in range(1000)}
    chart = _namespace_chart(totals)
    assert len(chart.bars) == CHART_NAMESPACES + 1
    assert [bar.kind for bar in chart.bars[:3]] == ["ns0999.acct", "ns0998.acct", "ns0997.acct"]
    rest = sum(1000 + n for n in range(1000 - CHART_NAMESPACES))
    others = chart.bars[-1]
    assert others.label == f"980 other namespaces: {rest:,} actions"
    # The shared bar is the longest and is drawn to the chart's width, never past it.
    assert max(bar.width for bar in chart.bars) == others.width == 632
    assert chart.height == (CHART_NAMESPACES + 1) * 56
    assert "980 other namespaces" in chart.description


def test_a_few_namespaces_each_get_their_bar() -> None:
    chart = _namespace_chart({"b.acct": 5, "a.acct": 5, "c.acct": 10})
    assert [bar.kind for bar in chart.bars] == ["c.acct", "a.acct", "b.acct"]
