# Sourced by scripts/dev and scripts/test: a virtual environment in .venv holding exactly the versions locked in
# uv.lock (with the dev extras when asked) plus the project itself, editable. uv (pinned, from PyPI) installs them
# in seconds; it reinstalls only when uv.lock or pyproject.toml changed. After changing dependencies in
# pyproject.toml run `.venv/bin/uv lock` and commit uv.lock (Dependabot keeps it current).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-}"
UV_VERSION="0.13.9"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
STAMP=".venv/.installed-$(cat pyproject.toml uv.lock | sha256sum | cut -c1-16)${EXTRAS:+-$EXTRAS}"
if [ ! -f "$STAMP" ]; then
  if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d" " -f1-2)" != "uv $UV_VERSION" ]; then
    echo "==> installing uv $UV_VERSION"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
  echo "==> installing the locked dependencies${EXTRAS:+ (with $EXTRAS)}"
  # --frozen: exactly uv.lock, never re-resolved; --inexact: keep uv itself, installed above
  UV_PROJECT_ENVIRONMENT="$ROOT/.venv" .venv/bin/uv sync --quiet --frozen --inexact ${EXTRAS:+--extra "$EXTRAS"}
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
