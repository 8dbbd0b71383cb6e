#!/usr/bin/env bash
# Back up the Aquoris Payment database: a gzipped plain-SQL pg_dump of DATABASE_URL into BACKUP_DIR, named
# payment-YYYYMMDD-HHMMSS.sql.gz (UTC), verified before it counts; then backups older than RETENTION_DAYS go.
# On any failure a JSON notice is POSTed to WEBHOOK_URL (when set) and the script exits non-zero.
#
#   DATABASE_URL    postgresql://user:password@host:5432/db (required; read from ENV_FILE when unset)
#   BACKUP_DIR      default /opt/aquoris-payment/backups
#   RETENTION_DAYS  default 30
#   WEBHOOK_URL     optional; receives {"text", "event", "host", "database", "error"} on failure
#   PG_BIN          optional folder of pg_dump (its major version must be >= the server's)
#   ENV_FILE        .env to read DATABASE_URL/WEBHOOK_URL from when they are not set (default: ../.env beside
#                   scripts/, i.e. /opt/aquoris-payment/.env on the server)
#   PG_CONTAINER    the database container whose pg_dump to use when PG_BIN is unset and it runs (on the server:
#                   aquoris-payment-db-1, the default); else pg_dump from PATH
set -Eeuo pipefail
umask 077

BACKUP_DIR="${BACKUP_DIR:-/opt/aquoris-payment/backups}"
RETENTION_DAYS="${RETENTION_DAYS:-30}"
ENV_FILE="${ENV_FILE:-$(dirname "${BASH_SOURCE[0]}")/../.env}"
PG_CONTAINER="${PG_CONTAINER:-aquoris-payment-db-1}"
SCRIPTS_DIR="${BASH_SOURCE[0]%/*}"; [ "$SCRIPTS_DIR" != "${BASH_SOURCE[0]}" ] || SCRIPTS_DIR=.
# shellcheck source=scripts/pg-common.sh
source "$SCRIPTS_DIR/pg-common.sh"


load_env_file DATABASE_URL WEBHOOK_URL
WEBHOOK_URL="${WEBHOOK_URL:-}"
partial=""
errlog="$(mktemp)"

notify_failure() {
  local reason="$1"
  [ -n "$WEBHOOK_URL" ] || return 0
  local host text body
  host="$(hostname 2>/dev/null || uname -n)"
  text="Aquoris Payment backup FAILED on $host for database '${PG_DATABASE_NAME:-?}': $reason"
  body="{\"text\":\"$(json_escape "$text")\",\"event\":\"backup_failed\",\"host\":\"$(json_escape "$host")\","
  body+="\"database\":\"$(json_escape "${PG_DATABASE_NAME:-?}")\",\"error\":\"$(json_escape "$reason")\"}"
  post_json "$WEBHOOK_URL" "$body" || echo "backup-db: could not deliver the failure notice to WEBHOOK_URL" >&2
}

fail() {
  local reason="$1"
  [ -n "$partial" ] && rm -f "$partial"
  echo "backup-db: FAILED: $reason" >&2
  notify_failure "$reason"
  rm -f "$errlog"
  exit 1
}

on_error() {
  # Unexpected command failure: report the last lines pg_dump/gzip wrote (they never contain the password,
  # which travels in PGPASSWORD, not on the command line).
  local detail
  detail="$(tail -n 5 "$errlog" 2>/dev/null | tr '\n' ' ')"
  fail "${detail:-command failed at line $1}"
}
trap 'on_error $LINENO' ERR

[ -n "${DATABASE_URL:-}" ] || fail "DATABASE_URL is not set"
if ! [[ "$RETENTION_DAYS" =~ ^[1-9][0-9]*$ ]]; then
  fail "RETENTION_DAYS must be a whole number >= 1"
fi
connection_from_url "$DATABASE_URL" || fail "DATABASE_URL must be a postgresql:// URL"
pg_command pg_dump || fail "pg_dump not found (install the PostgreSQL client, set PG_BIN, or start the db container)"
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"
mkdir -p "$BACKUP_DIR" || fail "cannot create $BACKUP_DIR"

stamp="$(date -u +%Y%m%d-%H%M%S)"
target="$BACKUP_DIR/payment-$stamp.sql.gz"
if [ -e "$target" ]; then  # two backups in one second: wait for a fresh name rather than overwrite
  sleep 1
  stamp="$(date -u +%Y%m%d-%H%M%S)"
  target="$BACKUP_DIR/payment-$stamp.sql.gz"
fi
partial="$target.partial"

# --clean --if-exists: the dump drops what it recreates, so it restores into an empty or an existing database;
# --no-owner --no-privileges: it restores under whichever role restore-db.sh connects as.
"${PG_RUN[@]}" --dbname="$PG_CONNINFO" --format=plain --clean --if-exists --no-owner --no-privileges \
  2>"$errlog" | gzip -9 >"$partial"

# Verified before it counts: a valid gzip, not empty, and pg_dump's own end marker present.
gzip -t "$partial" 2>>"$errlog" || fail "the dump is not a valid gzip file"
[ -s "$partial" ] || fail "the dump is empty"
gzip -dc "$partial" | tail -n 5 | grep -c "PostgreSQL database dump complete" >/dev/null \
  || fail "the dump is incomplete (no end marker)"
gzip -dc "$partial" | grep -c "^CREATE TABLE" >/dev/null || fail "the dump holds no table"
mv "$partial" "$target"
partial=""
size="$(wc -c <"$target" | tr -d ' ')"
echo "backup-db: wrote $target ($size bytes)"

# Retention: only our own backup files, only older than RETENTION_DAYS days (counted in minutes, not whole days).
find "$BACKUP_DIR" -maxdepth 1 -type f -name 'payment-*.sql.gz' -mmin "+$((RETENTION_DAYS * 24 * 60))" -print -delete \
  | sed 's/^/backup-db: removed old backup /'
rm -f "$errlog"
