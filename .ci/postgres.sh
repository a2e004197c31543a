#!/usr/bin/env bash
# A scratch PostgreSQL server for the tag-database tests (tests/discover/test_store.py reads PADDLE_TAG_PG_URL).
#   bash .ci/postgres.sh start DIR   # prints the database URL on stdout; logs go to stderr and DIR/server.log
#   bash .ci/postgres.sh stop DIR
# When no server is installed it installs Debian's `postgresql` package (root only: CI runs as root). It exits
# non-zero with the reason on stderr when it cannot, and .ci/run then says the PostgreSQL tests are skipped.
# DIR must be a fresh directory directly under a world-traversable one (mktemp -d): the server runs as the
# `postgres` user, which must reach it.
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a scratch directory}

server_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$action" in
start)
  if [ -z "$(server_bin)" ]; then
    [ "$(id -u)" = 0 ] || { echo "postgres.sh: no PostgreSQL server, and not root to apt-get install it" >&2; exit 1; }
    echo "postgres.sh: installing postgresql from the Debian registry" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends postgresql >&2 \
      || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends postgresql >&2; }
  fi
  bin=$(server_bin)
  [ -n "$bin" ] || { echo "postgres.sh: postgresql installed but no server binaries found" >&2; exit 1; }
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  [ "$(id -u)" != 0 ] || chown postgres "$dir"
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >&2
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
  as_postgres "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres paddle_tag_test >&2
  echo "postgresql://postgres@127.0.0.1:$port/paddle_tag_test"
  ;;
stop)
  bin=$(server_bin)
  if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
