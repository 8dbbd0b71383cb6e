#!/usr/bin/env bash
# Helpers shared by backup-db.sh and restore-db.sh (sourced, never run): read .env, turn DATABASE_URL into libpq
# settings with the password only in the environment, and find the PostgreSQL client programs.
# Deploy copies the three files together into /opt/aquoris-payment/scripts/.
# The variables set here (PG_CONNINFO, PG_DATABASE_NAME, PG_RUN, ...) are read by the script that sources this.
# shellcheck disable=SC2034

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
