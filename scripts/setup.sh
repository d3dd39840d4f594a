#!/usr/bin/env bash
# Create .venv and install Ferry with the frozen constraints. Idempotent: reinstalls only when
# requirements*.txt or constraints.txt changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "ferry setup: $*" >&2; exit 2; }

# Python 3.12+ (atdata, the ATProto dataset library, needs it). $PYTHON wins when set; else the first of
# python3.12, python3.13, python3 that is new enough, then pyenv-installed 3.12+ interpreters (oldest first:
# constraints.txt is frozen on 3.12).
is_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
  command -v "$PYTHON" >/dev/null || fail "no '$PYTHON' on PATH. Install Python 3.12+ (apt-get install python3.12 python3.12-venv) or run 'make PYTHON=/path/to/python3.12 ...'."
  is_ok "$PYTHON" || fail "$("$PYTHON" -V 2>&1) is too old: Ferry needs Python 3.12+ (Airflow 3.3, atdata). Run 'make PYTHON=python3.12 ...'."
else
  for cand in python3.12 python3.13 python3 $(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do
    if command -v "$cand" >/dev/null 2>&1 && is_ok "$cand"; then PYTHON=$cand; break; fi
  done
  [ -n "${PYTHON:-}" ] || fail "no Python 3.12+ found (tried python3.12, python3.13, python3 and pyenv versions). Install Python 3.12+ (apt-get install python3.12 python3.12-venv, or pyenv install 3.12) or run 'make PYTHON=/path/to/python3.12 ...'."
fi
VENV=${VENV:-.venv}
LOG=.ferry/install.log
mkdir -p .ferry

stamp="$VENV/.ferry-installed"
want=$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && ! is_ok "$VENV/bin/python"; then
  echo "ferry setup: $VENV is $("$VENV/bin/python" -V 2>&1); recreating it with $("$PYTHON" -V 2>&1)"
  rm -rf "$VENV"
fi
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
