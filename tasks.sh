#!/usr/bin/env bash
# Set-up and the two main jobs, for a fresh machine with only Python 3.11, pip and gcc.
#   ./tasks.sh reproduce [args...]   create .venv on first use, run `jaxlab reproduce --quick`
#   ./tasks.sh test      [args...]   create .venv on first use, lint, run the test suite
# Extra args go to `jaxlab reproduce` / `pytest`.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.installed-$(cat pyproject.toml constraints.txt setup.py jaxlab/tokenizer/_native.c | cksum | cut -d' ' -f1)"

setup() {
  if [ ! -f "$STAMP" ]; then
    echo "[tasks] creating $VENV and installing jaxlab (first use; a few minutes)" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[test,notebooks]"
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  reproduce)
    setup
    JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" "$VENV/bin/jaxlab" reproduce --quick --out runs/reproduce "$@"
    echo "[tasks] report: runs/reproduce/REPORT.md" >&2
    ;;
  test)
    setup
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    set +e
    JAX_PLATFORMS=cpu PYTHONHASHSEED=0 "$VENV/bin/pytest" -n 2 --durations=20 "$@"
    code=$?
    set -e
    if [ "$code" -eq 5 ]; then
      echo "[tasks] pytest collected no tests: that is a failure" >&2
      exit 1
    fi
    exit "$code"
    ;;
  *)
    echo "usage: ./tasks.sh reproduce|test [args...]" >&2
    exit 2
    ;;
esac
