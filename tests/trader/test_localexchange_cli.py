"""`python -m trader.localexchange` as a user runs it to rehearse a deployment: the faults asked
for are played on the requests they name, the clock can be put out of step, every request can
be printed, and a bad --fault is refused with the expected form (exit 2)."""

from __future__ import annotations

import hashlib
import hmac
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import BTC_1H, ROOT
from trader.localexchange.faults import HttpError, Latency, parse_spec


def test_a_rehearsal_plays_the_faults_it_was_given_and_prints_the_requests():
    process = subprocess.Popen(
        [sys.executable, "-m", "trader.localexchange", "--data", str(BTC_1H), "--port", "0", "--log-requests",
         "--fault", "server_error:503 on GET /api/v3/time times 2", "--skew", "-30"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        url = re.search(r"at (http://\S+)", first).group(1)
        process.stdout.readline()  # the keys
        answers = [httpx.get(f"{url}/api/v3/time", timeout=5).status_code for _ in range(3)]
        assert answers == [503, 503, 200]
        query = f"timestamp={int(time.time() * 1000)}&recvWindow=5000"
        signature = hmac.new(b"test-secret", query.encode(), hashlib.sha256).hexdigest()
        account = httpx.get(f"{url}/api/v3/account?{query}&signature={signature}",
                            headers={"X-MBX-APIKEY": "test-key"}, timeout=5)
        assert account.json()["code"] == -1021  # the exchange's clock is 30 s behind: our request is "ahead"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "GET /api/v3/account 400" in out
    assert [line.split()[-3:] for line in out.splitlines() if "/api/v3/time" in line] == [
        ["GET", "/api/v3/time", "503"], ["GET", "/api/v3/time", "503"], ["GET", "/api/v3/time", "200"]]
    assert "faults played: 2; rules with uses left: 0" in out


def test_a_bad_fault_is_refused_with_the_expected_form():
    done = subprocess.run([sys.executable, "-m", "trader.localexchange", "--data", str(BTC_1H), "--fault", "slow"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--fault: 'slow': unknown fault 'slow'; expected one of: latency," in done.stderr


@pytest.mark.parametrize("spec, pattern, times", [
    ("latency:2", "*", 1),
    ("latency:2 on /api/v3/ticker/* times 3", "/api/v3/ticker/*", 3),
    ("latency:2 on POST /api/v3/order times always", "POST /api/v3/order", None),
])
def test_a_spec_names_the_requests_and_how_often(spec, pattern, times):
    assert parse_spec(spec) == (pattern, Latency(2.0), times)


def test_a_rate_limit_spec_carries_its_retry_after():
    _, fault, _ = parse_spec("rate_limited:7")
    assert isinstance(fault, HttpError) and (fault.status, fault.retry_after) == (429, 7.0)
