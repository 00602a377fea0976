#!/usr/bin/env bash
# Runs the Kingdee interoperability test: builds and starts the sandbox example on a free
# port, creates a throwaway virtualenv with the official SDK, runs pytest, stops the sandbox.
# Usage: bash tests/interop/run_kingdee.sh   (from the repository root; VENV=… to reuse one)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${VENV:-$(mktemp -d)/venv}"
PORT="${KINGDEE_SANDBOX_PORT:-$((20000 + RANDOM % 20000))}"

cargo build -q -p sandbox --example kingdee_sandbox
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r tests/interop/requirements.txt
fi

LOG="$(mktemp)"
./target/debug/examples/kingdee_sandbox "127.0.0.1:$PORT" >"$LOG" 2>&1 &
SANDBOX_PID=$!
trap 'kill "$SANDBOX_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  grep -q KINGDEE_SANDBOX_URL "$LOG" && break
  sleep 0.1
done
export KINGDEE_SANDBOX_URL="http://127.0.0.1:$PORT/k3cloud/"
"$VENV/bin/python" -m pytest -q tests/interop/test_kingdee_sdk.py
