#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the ledger and Hermes tests and print
# its SQLAlchemy URL. Installs Debian's postgresql package when the server is missing.
set -euo pipefail
PORT="${PGTEST_PORT:-54329}"
DIR="${PGTEST_DIR:-/tmp/trader-pgtest}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$BIN" ] || [ ! -x "$BIN/postgres" ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
RUN=()
if [ "$(id -u)" = "0" ]; then RUN=(runuser -u postgres --); fi  # initdb refuses to run as root
if ! "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  rm -rf "$DIR" && mkdir -p "$DIR"
  [ "$(id -u)" = "0" ] && chown postgres "$DIR"
  "${RUN[@]}" "$BIN/initdb" -D "$DIR" -U postgres --auth=trust >/dev/null
  "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
    -o "-h 127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >&2
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
