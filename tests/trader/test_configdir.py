"""The deployed strategy and goals files reach the volume without undoing Hermes: copied on a
fresh volume, kept while the deployment's file is unchanged, replaced (and the old file kept)
when the user pushed a new one."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import SHIPPED_YAML as STRATEGY_YAML
from trader.config import load_strategy_config
from trader.configdir import default_path, sync_deployed

GOALS = Path(STRATEGY_YAML).with_name("goals.yaml")
T1 = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)


@pytest.fixture
def layout(tmp_path):
    app, data = tmp_path / "app" / "config", tmp_path / "data"
    app.mkdir(parents=True)
    (app / "strategy.yaml").write_bytes(Path(STRATEGY_YAML).read_bytes())
    (app / "goals.yaml").write_bytes(GOALS.read_bytes())
    env = {"TRADER_CONFIG_FROM": str(app), "TRADER_CONFIG_DIR": str(data / "config"), "TRADER_DATA_DIR": str(data)}
    return app, data / "config", env


def actions(done):
    return {s.name: s.action for s in done}


def test_a_fresh_volume_gets_the_deployed_files(layout):
    app, live, env = layout
    assert actions(sync_deployed(env, T1)) == {"strategy.yaml": "copied", "goals.yaml": "copied"}
    for name in ("strategy.yaml", "goals.yaml"):
        assert (live / name).read_bytes() == (app / name).read_bytes()
    assert default_path("strategy.yaml", env) == str(live / "strategy.yaml")


def test_a_promotion_on_the_volume_outlives_a_redeploy_of_the_same_files(layout):
    app, live, env = layout
    sync_deployed(env, T1)
    promoted = (live / "strategy.yaml").read_text().replace("fast: 20", "fast: 22")  # what Hermes writes
    (live / "strategy.yaml").write_text("# Hermes 2026-11-30 06:00Z: fast 20 -> 22\n" + promoted)
    assert actions(sync_deployed(env, T1)) == {"strategy.yaml": "kept", "goals.yaml": "kept"}
    assert load_strategy_config(live / "strategy.yaml").params.fast == 22


def test_a_new_deployed_file_wins_and_the_volume_file_is_kept(layout):
    app, live, env = layout
    sync_deployed(env, T1)
    (live / "strategy.yaml").write_text((live / "strategy.yaml").read_text().replace("fast: 20", "fast: 22"))
    hermes_version = (live / "strategy.yaml").read_bytes()
    (app / "strategy.yaml").write_text((app / "strategy.yaml").read_text().replace("slow: 50", "slow: 60"))  # the user's push
    done = {s.name: s for s in sync_deployed(env, T1)}
    assert done["strategy.yaml"].action == "replaced" and done["goals.yaml"].action == "kept"
    assert (live / "strategy.yaml").read_bytes() == (app / "strategy.yaml").read_bytes()
    kept = done["strategy.yaml"].kept_at
    assert kept == Path(env["TRADER_DATA_DIR"]) / "versions" / "replaced-20261130T060000Z-strategy.yaml"
    assert kept.read_bytes() == hermes_version
    # and from now on the new deployed file is the one the volume's copy is compared with
    assert actions(sync_deployed(env, T1))["strategy.yaml"] == "kept"


def test_the_same_edit_made_in_both_places_replaces_nothing(layout):
    app, live, env = layout
    sync_deployed(env, T1)
    edited = (app / "strategy.yaml").read_text().replace("slow: 50", "slow: 60")
    (app / "strategy.yaml").write_text(edited)
    (live / "strategy.yaml").write_text(edited)
    assert actions(sync_deployed(env, T1))["strategy.yaml"] == "unchanged"
    assert not (Path(env["TRADER_DATA_DIR"]) / "versions").exists()


def test_a_damaged_record_counts_the_deployed_files_as_new(layout):
    app, live, env = layout
    sync_deployed(env, T1)
    (live / ".deployed.json").write_text("{not json")
    (live / "goals.yaml").write_text((live / "goals.yaml").read_text() + "\n# edited on the volume\n")
    assert actions(sync_deployed(env, T1)) == {"strategy.yaml": "unchanged", "goals.yaml": "replaced"}
    assert json.loads((live / ".deployed.json").read_text()).keys() == {"strategy.yaml", "goals.yaml"}


def test_nothing_happens_outside_a_container(tmp_path):
    assert sync_deployed({}, T1) == []
    assert sync_deployed({"TRADER_CONFIG_DIR": str(tmp_path)}, T1) == []
    same = {"TRADER_CONFIG_DIR": str(tmp_path), "TRADER_CONFIG_FROM": str(tmp_path)}
    assert sync_deployed(same, T1) == []
    assert default_path("goals.yaml", {}) == "config/goals.yaml"


def test_trader_run_refuses_clearly_when_the_volume_cannot_take_the_files(layout, tmp_path, monkeypatch, capsys):
    from trader.cli import main

    app, _, env = layout
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    for key, value in {**env, "TRADER_CONFIG_DIR": str(blocker / "config")}.items():
        monkeypatch.setenv(key, value)
    # no handler on capsys' stream: it is closed after this test, and later tests would log to it
    monkeypatch.setattr("trader.logs.setup_logging", lambda **kwargs: None)
    assert main(["run", "--log-text"]) == 2
    err = capsys.readouterr().err
    assert "cannot bring the deployed strategy and goals files into" in err and str(blocker / "config") in err
    assert "Traceback" not in err
