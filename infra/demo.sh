#!/usr/bin/env bash
# The main job, on a fresh machine: install the local stack (project-local), start it, build the
# workspace, simulate the bundled portfolio through the real handlers, and write the report.
#   ./infra/demo.sh            -> .nudge/demo/deliveries.jsonl and .nudge/demo/report.html
# The stack keeps running afterwards (stop it with `infra/stack.sh down`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v cargo >/dev/null || { echo "demo: cargo not found; install Rust (rustup) first" >&2; exit 1; }
"$ROOT/infra/stack.sh" up
eval "$("$ROOT/infra/stack.sh" env)"
exec cargo run --locked -q -p nudge-infra --bin nudge -- demo --out-dir "$ROOT/.nudge/demo" "$@"
