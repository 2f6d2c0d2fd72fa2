"""Graph's timestamps compare as instants whatever their form: `Z` or an offset, 0 to 7 fractional digits."""

from __future__ import annotations

import datetime as dt

from inlet.connectors.kit.graph import before, graph_time
from inlet.connectors.kit.graph_webhooks import _epoch

UTC = dt.timezone.utc


def test_graph_time_reads_every_form_graph_sends() -> None:
    assert graph_time("2026-03-01T09:00:00Z") == dt.datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert graph_time("2026-03-01T09:00:00.1234567+00:00") == dt.datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert graph_time("2026-03-01T10:00:00+01:00") == dt.datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert graph_time("2026-03-01T09:00:00") == dt.datetime(2026, 3, 1, 9, tzinfo=UTC)  # naive: UTC
    assert graph_time(None) is None and graph_time("") is None and graph_time("soon") is None


def test_before_compares_instants_not_text() -> None:
    assert not before("2026-03-01T09:00:00.5Z", "2026-03-01T09:00:00Z")  # "." < "Z" as text
    assert before("2026-03-01T08:59:59.9Z", "2026-03-01T09:00:00Z")
    assert not before(None, "2026-03-01T09:00:00Z") and not before("2026-03-01T09:00:00Z", None)


def test_a_subscription_expiry_with_seven_digits_and_an_offset_is_read() -> None:
    expected = dt.datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC).timestamp()
    assert _epoch("2026-03-01T09:00:00.1234567+00:00") == expected
    assert _epoch("2026-03-01T09:00:00.1234567Z") == expected
