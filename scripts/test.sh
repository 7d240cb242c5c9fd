#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: a venv with lpkg and its test tools, the Docker
# daemon and stand-in images (scripts/test-env.sh), then ruff, mypy --strict and pytest.
# Extra arguments go to pytest. In CI (CI=true) the Docker setup must succeed and no Docker test
# may skip; elsewhere they skip when Docker cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,cdk]'

if ! scripts/test-env.sh; then
  if [ "${CI:-}" = "true" ]; then
    echo "test: the Docker test environment could not be set up, and CI must prove the container path" >&2
    exit 1
  fi
  echo "test: no Docker test environment; Docker tests will skip" >&2
fi

.venv/bin/ruff check .
.venv/bin/mypy --strict lpkg
.venv/bin/pytest "$@"
