#!/usr/bin/env bash
# Restore the Aquoris Payment database from a backup made by backup-db.sh:
#
#   restore-db.sh [--yes] /opt/aquoris-payment/backups/payment-YYYYMMDD-HHMMSS.sql.gz
#
# It replaces the data of DATABASE_URL with the backup's (the dump drops and recreates what it holds), in one
# transaction: a failed restore changes nothing. Stop the app and the worker first. It asks for confirmation on
# the terminal; without a terminal it refuses unless --yes is given.
#
#   DATABASE_URL  postgresql://user:password@host:5432/db (required; read from ENV_FILE when unset)
#   PG_BIN        optional folder of psql; else the database container's (PG_CONTAINER, default
#                 aquoris-payment-db-1) when it runs; else PATH
#   ENV_FILE      .env to read DATABASE_URL from when it is not set (default: ../.env beside scripts/)
set -Eeuo pipefail

ENV_FILE="${ENV_FILE:-$(dirname "${BASH_SOURCE[0]}")/../.env}"
PG_CONTAINER="${PG_CONTAINER:-aquoris-payment-db-1}"
usage() { echo "usage: $(basename "$0") [--yes] BACKUP_FILE.sql.gz" >&2; exit 2; }

SCRIPTS_DIR="${BASH_SOURCE[0]%/*}"; [ "$SCRIPTS_DIR" != "${BASH_SOURCE[0]}" ] || SCRIPTS_DIR=.
# shellcheck source=scripts/pg-common.sh
source "$SCRIPTS_DIR/pg-common.sh"

assume_yes=0
file=""
for arg in "$@"; do
  case "$arg" in
    -y|--yes) assume_yes=1 ;;
    -h|--help) usage ;;
    -*) echo "restore-db: unknown option $arg" >&2; usage ;;
    *) [ -z "$file" ] || usage; file="$arg" ;;
  esac
done
[ -n "$file" ] || usage
[ -r "$file" ] || { echo "restore-db: cannot read $file" >&2; exit 1; }
gzip -t "$file" 2>/dev/null || { echo "restore-db: $file is not a valid gzip file; nothing was changed" >&2; exit 1; }

load_env_file DATABASE_URL
[ -n "${DATABASE_URL:-}" ] || { echo "restore-db: DATABASE_URL is not set" >&2; exit 1; }
connection_from_url "$DATABASE_URL" || { echo "restore-db: DATABASE_URL must be a postgresql:// URL" >&2; exit 1; }
if ! pg_command psql; then
  echo "restore-db: psql not found (install the PostgreSQL client, set PG_BIN, or start the db container)" >&2
  exit 1
fi
target="${PG_CONNINFO%%\?*}"

if [ "$assume_yes" -ne 1 ]; then
  if [ ! -t 0 ]; then
    echo "restore-db: no terminal to confirm on; nothing was changed (pass --yes to restore without asking)" >&2
    exit 1
  fi
  echo "This REPLACES the data in $target with the backup $(basename "$file")."
  echo "Stop the app and the worker first (docker compose -f docker/docker-compose.<env>.yml stop app worker)."
  read -r -p "Type the database name ($PG_DATABASE_NAME) to continue: " answer
  if [ "$answer" != "$PG_DATABASE_NAME" ]; then
    echo "restore-db: not confirmed; nothing was changed" >&2
    exit 1
  fi
fi

export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"
# One transaction and stop at the first error: a restore either completes or leaves the database as it was.
gzip -dc "$file" | "${PG_RUN[@]}" --dbname="$PG_CONNINFO" --quiet --no-psqlrc --single-transaction \
  --set ON_ERROR_STOP=1 --output=/dev/null
echo "restore-db: restored $(basename "$file") into $target"
