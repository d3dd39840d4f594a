#!/usr/bin/env bash
# Create .venv and install Ferry with the frozen constraints. Idempotent: reinstalls only when
# requirements*.txt or constraints.txt changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
LOG=.ferry/install.log
mkdir -p .ferry

fail() { echo "ferry setup: $*" >&2; exit 2; }

command -v "$PYTHON" >/dev/null || fail "no '$PYTHON' on PATH. Install Python 3.11+ (apt-get install python3 python3-venv) or run 'make PYTHON=/path/to/python3.11 ...'."
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "$("$PYTHON" -V 2>&1) is too old: Ferry needs Python 3.11+ (Airflow 3.3). Run 'make PYTHON=python3.11 ...'."

stamp="$VENV/.ferry-installed"
want=$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "ferry setup: creating $VENV"
  "$PYTHON" -m venv "$VENV" >"$LOG" 2>&1 \
    || fail "'$PYTHON -m venv' failed (see $LOG). On Debian/Ubuntu: apt-get install python3-venv."
fi
echo "ferry setup: installing requirements-dev.txt with constraints.txt (first time ~2 min; log: $LOG)"
if ! "$VENV/bin/pip" install --disable-pip-version-check -c constraints.txt -r requirements-dev.txt >>"$LOG" 2>&1; then
  tail -n 15 "$LOG" >&2
  fail "pip install failed (full log: $LOG). Check that PyPI (or your mirror, PIP_INDEX_URL) is reachable and that a C compiler is present for packages without wheels; then rerun 'make setup'."
fi
"$VENV/bin/pip" check >>"$LOG" 2>&1 || { tail -n 5 "$LOG" >&2; fail "'pip check' found conflicting packages (see $LOG)."; }
echo "$want" > "$stamp"
echo "ferry setup: ready ($VENV)"
