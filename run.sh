#!/usr/bin/env bash
# One entry point that sets everything up on a fresh machine, then runs a job:
#   bash run.sh demo [--out DIR] [--seeds N]   the headline (teacher mod 113 -> students mod 107 at 20%)
#   bash run.sh test [pytest args]             the test suite
#   bash run.sh grokkit ARGS...                any grokkit command
# Set-up: a virtual environment in .venv (it sees system packages, so an installed torch is reused); torch 2.13.0 is
# installed first where none is present (the CPU wheel on this machine's disk); then grokkit itself, editable.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv --system-site-packages .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install --quiet "torch==2.13.0"
fi
stamp=.venv/.grokkit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
job=${1:-demo}
shift || true
case "$job" in
  demo) exec grokkit demo "$@" ;;
  test) exec python -m pytest "$@" ;;
  grokkit) exec grokkit "$@" ;;
  *) echo "usage: bash run.sh {demo|test|grokkit} [args...]" >&2; exit 2 ;;
esac
