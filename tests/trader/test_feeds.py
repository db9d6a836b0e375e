"""A replay's views carry their times as UTC datetimes built from the index's integers: the
very instants pandas' Timestamps would give, whatever the index's unit or time zone."""

from __future__ import annotations

from datetime import timezone

import pandas as pd
import pytest

from trader.feeds import ReplayFeed


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", ["UTC", None, "Asia/Tokyo"])
def test_replay_times_are_the_index_instants(unit, tz):
    index = pd.date_range("2017-07-01 11:00", periods=4, freq="1h", tz=tz, name="timestamp").as_unit(unit)
    frame = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0}, index=index)
    views = list(ReplayFeed(frame, 2).views())
    for i, view in enumerate(views):
        want = index[i] if tz else index[i].tz_localize("UTC")  # naive bars are read as UTC
        assert view.bar_utc == want and view.bar_utc.tzinfo is timezone.utc
        assert view.bar_time == index[i]
        if i + 1 < len(index):
            assert view.next_time == (index[i + 1] if tz else index[i + 1].tz_localize("UTC"))
        else:
            assert view.next_time is None
