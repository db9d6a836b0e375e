"""The container and the Railway service, checked without a Docker engine.

The Dockerfile and railway.toml are read and compared with the code (start command, health
path, port, data directory, working directory). Then the image's entry command is run directly,
as the image would run it: the same argv, the image's environment, a working directory laid out
like /app, a fresh directory standing for the /data volume, and the image's non-root uid when
the tests run as root. It trades on paper against the local exchange until /health answers 200,
then gets SIGTERM and must exit 0 with the ledger under the data directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

from trader.localexchange import LocalExchange

from .conftest import ROOT, STRATEGY_YAML

DOCKERFILE = ROOT / "Dockerfile"
RAILWAY_TOML = ROOT / "railway.toml"
PYPROJECT = ROOT / "pyproject.toml"


# -- reading the files ----------------------------------------------------------------------


@dataclass
class Image:
    """What the final stage of a Dockerfile declares."""

    base: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    expose: list[int] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    copies: list[tuple[list[str], str, list[str]]] = field(default_factory=list)  # (sources, destination, flags)
    runs: list[str] = field(default_factory=list)

    @property
    def argv(self) -> list[str]:
        """The process the container starts: ENTRYPOINT followed by CMD."""
        return self.entrypoint + self.cmd


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: comments dropped, continuations joined."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def exec_form(args: str, what: str) -> list[str]:
    try:
        argv = json.loads(args)
    except json.JSONDecodeError:
        raise AssertionError(f"{what} must use the exec form (a JSON array), got: {args}") from None
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), f"{what}: {args}"
    return argv


def parse_dockerfile(text: str) -> Image:
    image = Image()
    for keyword, args in instructions(text):
        if keyword == "FROM":
            image = Image(base=args.split()[0])  # a new stage starts afresh
        elif keyword == "ENV":
            tokens = shlex.split(args)
            if "=" not in tokens[0]:  # legacy `ENV KEY value`
                image.env[tokens[0]] = args.split(None, 1)[1]
            else:
                image.env.update(token.split("=", 1) for token in tokens)
        elif keyword == "WORKDIR":
            image.workdir = args if args.startswith("/") else f"{image.workdir.rstrip('/')}/{args}"
        elif keyword == "USER":
            image.user = args
        elif keyword == "ENTRYPOINT":
            image.entrypoint, image.cmd = exec_form(args, "ENTRYPOINT"), []  # as Docker resets CMD
        elif keyword == "CMD":
            image.cmd = exec_form(args, "CMD")
        elif keyword == "EXPOSE":
            image.expose += [int(port.split("/")[0]) for port in args.split()]
        elif keyword == "VOLUME":
            image.volumes += json.loads(args) if args.startswith("[") else args.split()
        elif keyword == "HEALTHCHECK":
            match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", args)
            assert match, f"HEALTHCHECK must be `[options] CMD [...]`, got: {args}"
            image.healthcheck = exec_form(match.group(2), "HEALTHCHECK CMD")
        elif keyword in ("COPY", "ADD"):
            tokens = [t for t in args.split() if not t.startswith("--")]
            image.copies.append((tokens[:-1], tokens[-1], [t for t in args.split() if t.startswith("--")]))
        elif keyword == "RUN":
            image.runs.append(args)
    return image


@pytest.fixture(scope="module")
def image() -> Image:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def railway() -> dict:
    with RAILWAY_TOML.open("rb") as fh:
        return tomllib.load(fh)


def image_uid(image: Image) -> int:
    """The uid the Dockerfile gives its USER."""
    for run in image.runs:
        match = re.search(r"useradd\b.*--uid[ =](\d+)\b.*\s" + re.escape(image.user) + r"\b", run)
        if match:
            return int(match.group(1))
    raise AssertionError(f"no `useradd --uid N ... {image.user}` in the Dockerfile")


# -- the files agree with each other and with the code -----------------------------------


def test_railway_builds_the_dockerfile_and_starts_its_command(image, railway):
    assert railway["build"]["builder"] == "DOCKERFILE"
    assert (ROOT / railway["build"]["dockerfilePath"]).resolve() == DOCKERFILE.resolve()
    # Railway's start command replaces the image's ENTRYPOINT: it must be the very same argv
    assert shlex.split(railway["deploy"]["startCommand"]) == image.argv
    assert railway["deploy"]["restartPolicyType"] == "ON_FAILURE"
    assert isinstance(railway["deploy"]["restartPolicyMaxRetries"], int) and railway["deploy"]["restartPolicyMaxRetries"] > 0
    assert isinstance(railway["deploy"]["healthcheckTimeout"], int) and railway["deploy"]["healthcheckTimeout"] >= 60


def test_the_start_command_is_the_paper_daemon(image):
    from trader.cli import _parser
    from trader.cli_daemon import _run

    with PYPROJECT.open("rb") as fh:
        project = tomllib.load(fh)["project"]
    program, *args = image.argv
    assert program in project["scripts"], f"{program!r} is not one of the package's console scripts"
    assert project["scripts"][program] == "trader.cli:main"
    parsed = _parser().parse_args(args)
    assert parsed.handler is _run and not parsed.live and parsed.replay is None  # paper unless told otherwise
    # the repository's config/ is deployed to TRADER_CONFIG_FROM; the daemon trades the copies
    # in TRADER_CONFIG_DIR, on the volume, which is where every command looks by default
    copied = {dest.rstrip("/") for sources, dest, _ in image.copies if sources == ["config"]}
    assert copied == {image.env["TRADER_CONFIG_FROM"]}
    assert image.env["TRADER_CONFIG_DIR"].startswith(image.env["TRADER_DATA_DIR"] + "/")
    with mock.patch.dict(os.environ, image.env):
        parsed = _parser().parse_args(args)
    assert (parsed.config, parsed.goals) == tuple(f"{image.env['TRADER_CONFIG_DIR']}/{name}"
                                                  for name in ("strategy.yaml", "goals.yaml"))
    for name in ("strategy.yaml", "goals.yaml"):
        assert (ROOT / "config" / name).is_file(), f"config/{name} is not in the repository the image copies"
    # the base image runs the Python the package requires
    assert image.base.startswith("python:3.11") and "slim" in image.base
    assert project["requires-python"] == ">=3.11"


def test_port_data_dir_and_logs_come_from_the_image_environment(image):
    from trader.health import port_from_env
    from trader.ledger.db import data_dir, database_url
    from trader.logs import default_json

    assert port_from_env({}) == int(image.env["PORT"]) == port_from_env(image.env)
    assert image.expose == [port_from_env(image.env)]
    assert str(data_dir(image.env)) == "/data" and "/data" in image.volumes
    assert database_url(image.env) == "sqlite:////data/trader.db"  # the ledger lives on the volume
    assert default_json(image.env) is True


def test_the_image_runs_as_a_non_root_user(image):
    assert image.user not in ("", "root", "0")
    assert image_uid(image) != 0
    chowned = " ".join(run for run in image.runs if "chown" in run)
    assert "/data" in chowned and image.workdir in chowned  # the volume and /app are the user's
    # the deployed config files are history the daemon only reads: Hermes writes on the volume
    (flags,) = [flags for sources, _, flags in image.copies if sources == ["config"]]
    assert not any(flag.startswith("--chown") for flag in flags), flags


def test_health_path_is_the_one_the_daemon_serves(image, railway):
    from trader.web import Site, serve

    path = railway["deploy"]["healthcheckPath"]
    assert path == "/health"
    urls = re.findall(r"http://127\.0\.0\.1:[^/'\"]+(/[\w/]*)", " ".join(image.healthcheck))
    assert urls == [path], f"the Dockerfile's HEALTHCHECK probes {urls}, railway.toml {path}"
    # the daemon's web server, started as Service.run starts it; no ledger behind /health
    server = serve(Site(lambda: {}, lambda: (True, "ok"), None, "main"), port=0, host="127.0.0.1")
    try:
        with urllib.request.urlopen(server.url + path, timeout=5) as answer:
            assert answer.status == 200 and json.load(answer) == {"ok": True, "reason": "ok"}
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + path + "z", timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()


def test_dockerignore_keeps_local_state_out_but_not_the_sources(image):
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "data", ".git", "tests"} <= ignored
    for sources, _, _ in image.copies:
        for source in sources:
            assert source not in ignored, f"{source} is COPYed but excluded by .dockerignore"


# -- running the entry command as the image would -----------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def now_candles(btc: pd.DataFrame, in_progress: int) -> pd.DataFrame:
    """Real candles moved in time so that candle `in_progress` is the one in progress now."""
    frame = btc.iloc[: in_progress + 1].copy()
    frame.index = frame.index + (pd.Timestamp.now(tz="UTC").floor("h") - frame.index[in_progress])
    return frame


def as_user(uid: int | None) -> dict:
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


def runs_as(argv: list[str], uid: int | None) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin"},
                              **as_user(uid))
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def console_scripts(bin_dir: Path, python: Path) -> None:
    """The package's console scripts, as pip writes them, for `python`."""
    with PYPROJECT.open("rb") as fh:
        scripts = tomllib.load(fh)["project"]["scripts"]
    for name, target in scripts.items():
        module, func = target.split(":")
        path = bin_dir / name
        path.write_text(f"#!{python}\nimport sys\nfrom {module} import {func}\n"
                        f"if __name__ == '__main__':\n    sys.exit({func}())\n")
        path.chmod(0o755)


def runtime_for(uid: int | None, base: Path) -> Path:
    """A bin directory whose `trader` (and `python`) the user `uid` can run, with the
    project's installed packages: the test's own environment when `uid` can reach it,
    otherwise a throwaway venv on another interpreter of the same version (this venv's
    interpreter can sit under a home directory that other users cannot enter)."""
    own = Path(sys.executable).parent
    if (own / "trader").exists() and runs_as([str(own / "python"), "-c", "import trader.cli"], uid):
        return own
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    check = f"import sys; assert sys.version_info[:2] == {sys.version_info[:2]!r}"
    for candidate in dict.fromkeys(filter(None, (shutil.which(f"python{version}", path=p)
                                                for p in ("/usr/local/bin", "/usr/bin", "/bin")))):
        if not runs_as([candidate, "-c", check], uid):
            continue
        venv = base / "python"
        subprocess.run([candidate, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
        python = venv / "bin" / "python"
        purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        # addsitedir, not a bare path: the project's own .pth files (the editable install) must run
        (Path(purelib) / "_project_site.pth").write_text(
            f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
        console_scripts(venv / "bin", python)
        if runs_as([str(python), "-c", "import trader.cli"], uid):
            return venv / "bin"
    pytest.skip(f"no Python {version} that uid {uid} may run with this project's packages")


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_the_entry_command_runs_as_the_image_would(image, btc):
    # As root, drop to the image's uid as the container would; otherwise this user is not root.
    uid = image_uid(image) if os.geteuid() == 0 else None
    # Not pytest's tmp_path: it sits in a directory only the test's user may enter.
    base = Path(tempfile.mkdtemp(prefix="trader-deploy-"))
    base.chmod(0o755)
    try:
        _run_entry_command(image, btc, uid, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run_entry_command(image: Image, btc: pd.DataFrame, uid: int | None, base: Path) -> None:
    bin_dir = runtime_for(uid, base)
    # the working directory as the image lays it out: WORKDIR holds config/, owned by the user
    app, data, home = base / "app", base / "data", base / "home"
    (app / "config").mkdir(parents=True)
    # the local exchange speaks Binance's API, so the strategy file names binance
    text = STRATEGY_YAML.read_text(encoding="utf-8")
    (app / "config" / "strategy.yaml").write_text(
        re.sub(r"(?m)^symbol: .*$", "symbol: BTC/USDT", re.sub(r"(?m)^exchange: .*$", "exchange: binance", text)))
    shutil.copy(ROOT / "config" / "goals.yaml", app / "config" / "goals.yaml")
    data.mkdir()  # stands for the /data volume
    home.mkdir()
    if uid is not None:
        for path in (app, app / "config", *(app / "config").iterdir(), data, home):
            os.chown(path, uid, uid)

    port = free_port()
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **image.env}
    # the image's own values where they name container paths, and the local exchange
    assert env["TRADER_DATA_DIR"] == "/data" and "PORT" in env
    assert (env["TRADER_CONFIG_DIR"], env["TRADER_CONFIG_FROM"]) == ("/data/config", "/app/config")
    env.update(TRADER_DATA_DIR=str(data), PORT=str(port), TRADER_CONFIG_DIR=str(data / "config"),
               TRADER_CONFIG_FROM=str(app / "config"))
    if "NUMBA_CACHE_DIR" in env:
        env["NUMBA_CACHE_DIR"] = str(base / "numba-cache")

    def run(argv: list[str], **kwargs) -> subprocess.Popen:
        program = shutil.which(argv[0], path=env["PATH"])  # as exec resolves it in the container
        assert program, f"{argv[0]} is not on the image's PATH"
        return subprocess.Popen([program, *argv[1:]], cwd=app, env=kwargs.pop("env", env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **as_user(uid), **kwargs)

    with LocalExchange(now_candles(btc, 700), symbol="BTC/USDT") as exchange:
        exchange.clock.set(pd.Timestamp.now(tz="UTC"))
        env["TRADER_EXCHANGE_URL"] = exchange.base_url
        proc = run(image.argv)
        try:
            deadline, answers = time.monotonic() + 60, []
            while True:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, (answers, proc.pid)
                try:
                    answers.append(get(f"http://127.0.0.1:{port}/health"))
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.1)
                    continue
                if answers[-1][0] == 200:
                    break
                # before the first tick: 503 with the reason, as JSON
                code, body = answers[-1]
                assert code == 503 and body["ok"] is False and body["reason"], answers[-1]
                time.sleep(0.1)
            status = get(f"http://127.0.0.1:{port}/status")[1]
            assert status["mode"] == "paper" and status["state"] == "running"

            # the image's HEALTHCHECK, run the same way: passes now, fails with nothing listening
            probe = run(image.healthcheck)
            assert probe.wait(timeout=30) == 0, probe.communicate()
            probe = run(image.healthcheck, env={**env, "PORT": str(free_port())})
            assert probe.wait(timeout=30) != 0
            probe.communicate()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
    assert proc.returncode == 0, err

    # JSON log lines (the container default), from start to a clean stop
    events = [json.loads(line).get("event") for line in out.splitlines() if line.strip()]
    assert "started" in events and events[-1] == "stopped", (events, err)
    # the ledger is on the data directory, written by the image's user, nothing beside the config
    ledger = data / "trader.db"
    assert ledger.is_file()
    if uid is not None:
        assert ledger.stat().st_uid == uid
    assert sorted(p.name for p in app.iterdir()) == ["config"]
    # the daemon traded the deployed files, copied onto the volume
    for name in ("strategy.yaml", "goals.yaml"):
        assert (data / "config" / name).read_bytes() == (app / "config" / name).read_bytes()
    from trader.ledger import open_ledger, sessions, store

    with sessions(open_ledger(f"sqlite:///{ledger}", migrate=False))() as s:
        assert len(store.equity_of(s, "main")) == 1
        assert [e.kind for e in s.query(store.Event).order_by(store.Event.id)][-1] == "stopped"
