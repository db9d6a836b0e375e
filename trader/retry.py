"""One retry policy for calls that fail for a while (an exchange's rate limit or outage, a
webhook that is down), used by the daemon's tick, the candle download and the notifier.

Exponential backoff (`first` seconds, doubled per failure, at most `cap`), but never less
than the server asked for (`requested`, e.g. an exception's `retry_after` or a Retry-After
header); a bounded number of attempts, after which the last error is raised as it was;
errors that `retry_on` rejects are raised at once. A `stop` event ends the retrying on
shutdown, before an attempt or during a wait, with `Stopped`. Built on tenacity.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

T = TypeVar("T")

Sleep = Callable[[float], object]  # a truthy return means "stop waiting": Event.wait does that
OnRetry = Callable[[BaseException, int, float], None]  # (error, attempts so far, wait in seconds)


class Stopped(Exception):
    """The stop event was set: no further attempt is made."""


def retry_after(exc: BaseException) -> float | None:
    """The wait an exception says the server asked for (our exchange errors' `retry_after`)."""
    return float(getattr(exc, "retry_after", None) or 0) or None


def backoff(attempt: int, first: float, cap: float, requested: float | None = None) -> float:
    """The wait after failed attempt number `attempt` (1-based)."""
    return max(min(first * 2 ** (attempt - 1), cap), requested or 0.0)


def call(fn: Callable[[], T], *, attempts: int, first: float, cap: float,
         retry_on: type[BaseException] | tuple[type[BaseException], ...],
         requested: Callable[[BaseException], float | None] = retry_after,
         stop: threading.Event | None = None, sleep: Sleep | None = None,
         on_retry: OnRetry | None = None) -> T:
    """`fn()` until it returns, under the policy above. `sleep` defaults to `stop.wait` (so a
    shutdown cuts a wait short) or, without a stop event, to time.sleep; tests pass their own."""

    def attempt() -> T:
        if stop is not None and stop.is_set():
            raise Stopped()
        return fn()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception()  # type: ignore[union-attr]
        return backoff(state.attempt_number, first, cap, requested(exc))

    def pause(seconds: float) -> None:
        # looked up at each wait, so a stop event's wait replaced after set-up is the one used
        if (sleep or (stop.wait if stop is not None else time.sleep))(seconds):
            raise Stopped()

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry(state.outcome.exception(), state.attempt_number, state.next_action.sleep)  # type: ignore[union-attr]

    policy = Retrying(stop=stop_after_attempt(attempts), wait=wait, retry=retry_if_exception_type(retry_on),
                      sleep=pause, before_sleep=before_sleep, reraise=True)
    return policy(attempt)
