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
# --- helpers (kept in each script so one file can be copied to a server alone) ---
load_env_file() {  # fill unset variables from ENV_FILE (KEY=value lines; quotes stripped)
  local file="${ENV_FILE:-}" name line value
  [ -n "$file" ] && [ -r "$file" ] || return 0
  for name in "$@"; do
    [ -z "${!name:-}" ] || continue
    line="$(grep -E "^[[:space:]]*(export[[:space:]]+)?$name=" "$file" | tail -n 1)" || continue
    value="${line#*=}"
    value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
    printf -v "$name" '%s' "$value"
  done
}

connection_from_url() {  # URL -> PG_CONNINFO without the password, PGPASSWORD, PG_DATABASE_NAME
  local url="$1" re='^(postgres|postgresql)(\+[A-Za-z0-9_]+)?://(([^:@/]*)(:([^@/]*))?@)?([^/?]*)(/([^?]*))?(\?(.*))?$'
  [[ "$url" =~ $re ]] || return 1
  local user="${BASH_REMATCH[4]}" password="${BASH_REMATCH[6]}" hostport="${BASH_REMATCH[7]}"
  local database="${BASH_REMATCH[9]}" query="${BASH_REMATCH[11]}"
  query="${query//ssl=/sslmode=}"  # asyncpg spells it ssl, libpq sslmode
  PG_CONNINFO="postgresql://${user:+$user@}$hostport/$database${query:+?$query}"
  PG_DATABASE_NAME="${database:-postgres}"
  # The password travels in the environment: never on a command line (ps) nor in a message.
  if [ -n "$password" ]; then
    PGPASSWORD="$(printf '%b' "${password//%/\\x}")"
    export PGPASSWORD
  fi
}

pg_command() {  # PG_RUN=(how to run a PostgreSQL client program): PG_BIN, else the database container, else PATH
  if [ -n "${PG_BIN:-}" ]; then
    [ -x "$PG_BIN/$1" ] || return 1
    PG_RUN=("$PG_BIN/$1")
  elif command -v docker >/dev/null 2>&1 \
      && [ "$(docker inspect --format '{{.State.Running}}' "$PG_CONTAINER" 2>/dev/null)" = "true" ]; then
    # On the server: the database container's own client (same major version as the server). The password goes
    # in by name (-e PGPASSWORD), so it is on no command line.
    PG_RUN=(docker exec -i -e PGPASSWORD -e PGCONNECT_TIMEOUT "$PG_CONTAINER" "$1")
  else
    command -v "$1" >/dev/null || return 1
    PG_RUN=("$1")
  fi
}

json_escape() {
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\n'/\\n}"; s="${s//$'\r'/}"; s="${s//$'\t'/\\t}"
  printf '%s' "$s"
}

post_json() {  # POST a JSON body with curl, or with python3 where curl is missing (the toolbox image)
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -m 10 -X POST -H 'Content-Type: application/json' --data-binary "$2" "$1" >/dev/null
  else
    python3 - "$1" "$2" <<'PYPOST'
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
urllib.request.urlopen(request, timeout=10).read()
PYPOST
  fi
}
# --- end of helpers ---


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
