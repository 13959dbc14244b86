#!/usr/bin/env bash
# Start a throwaway PostgreSQL on loopback for the store's PostgreSQL tests and print the
# URL for MLWARDEN_TEST_POSTGRES. Exits nonzero when it cannot: CI must not skip those tests.
set -u
log=$(mktemp)
{
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql
  fi
  ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
  pg_lsclusters -h | grep -q "^$ver main" || pg_createcluster "$ver" main
  pg_ctlcluster "$ver" main start || true
  for _ in $(seq 1 30); do
    su postgres -c "pg_isready -q" && break
    sleep 1
  done
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='mlwci'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"CREATE ROLE mlwci LOGIN CREATEDB PASSWORD 'mlwci'\""
  su postgres -c "psql -qc \"ALTER ROLE mlwci CREATEDB\""
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='mlwci'\"" | grep -q 1 \
    || su postgres -c "createdb -O mlwci mlwci"
} >"$log" 2>&1
if PGPASSWORD=mlwci psql -h 127.0.0.1 -U mlwci -d mlwci -qtAc "SELECT 1" 2>>"$log" | grep -q 1
then
  echo "postgresql://mlwci:mlwci@127.0.0.1:5432/mlwci"
else
  echo "PostgreSQL unavailable:" >&2
  tail -5 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
