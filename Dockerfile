# hermes-trader: the daemon as a 24/7 container (paper trading unless told otherwise).
#
#   docker build -t hermes-trader .
#   docker run -v trader-data:/data -p 8080:8080 hermes-trader            # paper
#   docker run ... hermes-trader --live                                   # `trader run --live`
#   docker run ... --entrypoint trader hermes-trader status               # any other command
#   docker stop -t 60 CONTAINER     # Docker's default 10 s may cut a tick short (the ledger recovers)
#
# tests/test_deploy.py reads this file: keep ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE and
# HEALTHCHECK on one line each (or continued with a trailing backslash).

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first, in a layer keyed on pyproject.toml alone: editing the code does not
# reinstall numba and pandas. The list is read from pyproject.toml so it has one home: the
# core plus the extras a Railway deployment switches on by a variable alone, without a
# rebuild: postgres (DATABASE_URL) and claude (ANTHROPIC_API_KEY). Not parquet: the daemon
# caches candles as CSV, and pyarrow would add about 140 MB.
COPY pyproject.toml /tmp/deps/pyproject.toml
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/deps/pyproject.toml', 'rb'))['project']; deps = p['dependencies'] + [d for e in ('postgres', 'claude') for d in p['optional-dependencies'][e]]; open('/tmp/deps/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && pip install --no-cache-dir -r /tmp/deps/requirements.txt \
 && rm -rf /tmp/deps

# The package itself (no dependencies left to fetch); README.md is the project's readme.
COPY pyproject.toml README.md /tmp/src/
COPY trader /tmp/src/trader
COPY strategies /tmp/src/strategies
COPY hermes /tmp/src/hermes
RUN pip install --no-cache-dir --no-deps /tmp/src && rm -rf /tmp/src

# A fixed uid, so a volume's ownership means the same thing on every host.
RUN groupadd --gid 10001 trader \
 && useradd --uid 10001 --gid 10001 --create-home trader \
 && mkdir -p /data /app \
 && chown trader:trader /data /app

WORKDIR /app
# The repository's strategy and goals files, as deployed. The daemon trades copies of them on
# the volume (TRADER_CONFIG_DIR), so Hermes' promotions and edits made in the container
# outlive a redeploy; `trader run` copies a deployed file again only when it changed since
# the last deployment (trader/configdir.py).
COPY config /app/config

# /data holds the SQLite ledger, the traded config files, the reports, the OHLCV cache and
# kept strategy versions: mount a volume there. Numba caches compiled kernels beside their
# source by default, which is read-only here.
ENV TRADER_DATA_DIR=/data \
    TRADER_CONFIG_DIR=/data/config \
    TRADER_CONFIG_FROM=/app/config \
    PORT=8080 \
    TRADER_LOG_JSON=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache
VOLUME /data
EXPOSE 8080

USER trader

# /health answers 503 until the first tick and while halted; slim images have no curl.
HEALTHCHECK --interval=60s --timeout=5s --start-period=120s --retries=3 CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % (os.environ.get('PORT') or '8080'), timeout=4)"]

# Exec form: the daemon is PID 1 and gets SIGTERM itself (it finishes the running tick, then
# exits 0). Extra arguments go to `trader run`, e.g. `--live`. railway.toml starts the same command.
ENTRYPOINT ["trader", "run"]
