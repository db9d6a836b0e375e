"""The dashboard's server: /health and /status keep their contracts, the event stream resumes
by id, the controls need the token, hostile requests get clear answers. Real server, real ledger."""

from __future__ import annotations

import logging
import socket

from sqlalchemy import select

from trader.ledger.models import DaemonState, Event
from trader.web.stream import parse_after

from .conftest import TOKEN, read_ids, start_dash


def test_health_and_status_keep_their_contracts(dash):
    with dash.client() as c:
        r = c.get("/health")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json() == {"ok": True, "reason": "last tick 1 s ago"}
        s = c.get("/status")
        assert s.status_code == 200 and s.json()["book"] == "main" and s.headers["cache-control"] == "no-store"
        refused = c.post("/health")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
        assert c.head("/health").status_code == 200
        assert c.get("/nope").json() == {"error": "not found"}


def test_the_page_and_its_files_load_and_nothing_else_does(dash):
    with dash.client() as c:
        page = c.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        for path in ("/static/..%2f..%2fpyproject.toml", "/static/../app.py", "/static/%2e%2e/app.py",
                     "/api/reviews/..%2f1", "/static/app.py", "/../../etc/passwd"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert "[project]" not in r.text and "import" not in r.text


def test_a_stream_resumes_after_an_id_with_no_gap_and_no_repeat(dash):
    dash.add_events(30)
    with dash.client() as c:
        assert read_ids(c, 30) == list(range(1, 31))
        assert read_ids(c, 20, params={"after": "10"}) == list(range(11, 31))
        # Last-Event-ID, as a browser sends it on reconnecting, wins over ?after=
        assert read_ids(c, 5, headers={"Last-Event-ID": "25"}, params={"after": "3"}) == list(range(26, 31))
        page = c.get("/api/events", params={"after": 28}).json()
        assert [e["id"] for e in page] == [29, 30] and page[0]["kind"] == "note"


def test_live_events_reach_a_waiting_stream(dash):
    import threading

    dash.add_events(3)
    with dash.client() as c:
        got: list[int] = []
        reader = threading.Thread(target=lambda: got.extend(read_ids(c, 8, headers={"Last-Event-ID": "1"})))
        reader.start()
        dash.add_events(6)
        reader.join(20)
    assert got == list(range(2, 10))


def test_a_bad_resume_id_is_a_clear_400():
    for bad in ("abc", "-1", "1.5", "9" * 30):
        try:
            parse_after(bad, None)
        except ValueError as exc:
            assert "whole number" in str(exc)
        else:
            raise AssertionError(bad)


def test_bad_resume_ids_over_http(dash):
    with dash.client() as c:
        r = c.get("/events", headers={"Last-Event-ID": "nope"})
        assert r.status_code == 400 and "whole number" in r.json()["error"]
        assert c.get("/api/events", params={"limit": "0"}).status_code == 400


def _halted(dash) -> bool:
    with dash.factory() as s:
        return s.get(DaemonState, "main").state == "halted"


def test_controls_need_the_token_and_keep_it_secret(dash, caplog):
    caplog.set_level(logging.DEBUG)
    with dash.client() as c:
        assert c.get("/api/control/halt").status_code == 405  # POST only
        no = c.post("/api/control/halt")
        assert no.status_code == 401 and "Bearer" in no.json()["error"] and "www-authenticate" in no.headers
        wrong = c.post("/api/control/halt", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "wrong token"}
        assert not _halted(dash)
        ok = c.post("/api/control/halt", headers={"Authorization": f"Bearer {TOKEN}"}, json={"reason": "lunch"})
        assert ok.status_code == 200 and ok.json()["ok"] and _halted(dash)
        bad = c.post("/api/control/rollback", headers={"Authorization": f"Bearer {TOKEN}"}, content=b"{not json")
        assert bad.status_code == 400 and "JSON" in bad.json()["error"]
        back = c.post("/api/control/resume", headers={"Authorization": f"Bearer {TOKEN}"})
        assert back.status_code == 200 and not _halted(dash) and "resumed" in back.json()["message"]
        again = c.post("/api/control/resume", headers={"Authorization": f"Bearer {TOKEN}"})
        assert again.status_code == 200 and again.json()["message"] == "not halted: nothing to resume"
        refused = c.post("/api/control/approve", headers={"Authorization": f"Bearer {TOKEN}"})
        assert refused.status_code == 400 and "read-only review" in refused.json()["error"]
    with dash.factory() as s:
        texts = [f"{e.kind} {e.message} {e.data}" for e in s.scalars(select(Event))]
    assert any("lunch" in t for t in texts)
    assert not any(TOKEN in t for t in texts) and TOKEN not in caplog.text


def test_without_the_variable_the_dashboard_is_read_only(tmp_path):
    dash = start_dash(tmp_path, token=None)
    try:
        with dash.client() as c:
            r = c.post("/api/control/halt", headers={"Authorization": "Bearer anything"})
            assert r.status_code == 403 and "read-only" in r.json()["error"]
            assert c.get("/api/status").json()["controls"] == "read-only"
    finally:
        dash.server.stop()


def test_oversized_headers_and_garbage_are_refused_and_health_still_answers(dash):
    with dash.client() as c:
        big = c.get("/health", headers={"X-Big": "a" * 70_000})
        assert big.status_code in (400, 431)
    with socket.create_connection(("127.0.0.1", dash.server.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    with dash.client() as c:
        assert c.get("/health").status_code == 200


def test_the_api_serves_the_dashboard_panels(dash):
    with dash.client() as c:
        status = c.get("/api/status").json()
        assert status["state"] == "running" and status["controls"] == "enabled"
        assert status["approvals"]["hermes"] == "read_only" and status["approvals"]["live"] is None
        assert c.get("/api/trades").json() == []
        assert c.get("/api/equity").json()["points"] == []
        assert c.get("/api/reviews").json() == []
        assert c.get("/api/reviews/7").status_code == 404
        assert c.get("/api/versions").json() == {"versions": [], "experiments": []}
        spec = c.get("/api/openapi.json").json()
        assert "/events" in spec["paths"] and spec["paths"]["/api/control/{action}"]["post"]["security"]
