"""trader.retry: the one retry policy of the tick, the download and the notifier."""

from __future__ import annotations

import threading

import pytest

from trader import retry


class Busy(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


def failing(errors: list[BaseException]):
    calls = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"
    return fn, calls


def test_backoff_doubles_up_to_the_cap_and_never_undercuts_the_server():
    waits: list[float] = []
    fn, calls = failing([Busy(), Busy(), Busy(7.0), Busy(), Busy()])
    assert retry.call(fn, attempts=6, first=2.0, cap=10.0, retry_on=Busy, sleep=waits.append) == "ok"
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]  # the server's 7 s after the third is less than ours
    assert retry.backoff(1, 2.0, 10.0, requested=30.0) == 30.0  # a longer ask is waited in full


def test_gives_up_with_the_last_error_after_the_attempts():
    waits: list[float] = []
    last = Busy()
    fn, calls = failing([Busy(), Busy(), last])
    with pytest.raises(Busy) as caught:
        retry.call(fn, attempts=3, first=1.0, cap=60.0, retry_on=Busy, sleep=waits.append)
    assert caught.value is last and len(calls) == 3
    assert waits == [1.0, 2.0]  # no wait after the last attempt


def test_other_errors_are_raised_at_once():
    waits: list[float] = []
    fn, calls = failing([ValueError("bad request")])
    with pytest.raises(ValueError):
        retry.call(fn, attempts=5, first=1.0, cap=60.0, retry_on=Busy, sleep=waits.append)
    assert len(calls) == 1 and waits == []


def test_a_stop_ends_the_waiting_and_the_attempts():
    stop = threading.Event()
    seen = []

    def on_retry(exc, attempt, wait):
        seen.append((attempt, wait))
        stop.set()  # shutdown arrives during the wait

    fn, calls = failing([Busy(), Busy()])
    with pytest.raises(retry.Stopped):
        retry.call(fn, attempts=5, first=3600.0, cap=3600.0, retry_on=Busy, stop=stop, on_retry=on_retry)
    assert len(calls) == 1 and seen == [(1, 3600.0)]  # the hour-long wait did not happen
    with pytest.raises(retry.Stopped):
        retry.call(fn, attempts=5, first=1.0, cap=1.0, retry_on=Busy, stop=stop)
    assert len(calls) == 1  # stopped before any attempt
