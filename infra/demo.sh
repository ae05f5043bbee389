#!/usr/bin/env bash
# The main job, on a fresh machine: install the local stack (project-local) and Chromium, start
# the stack, build the CLI (optimised), generate a 60-account portfolio and simulate 45 days of
# it through the real handlers, write the report and check it in headless Chromium.
#   ./infra/demo.sh [nudge demo options: --seed N --accounts N --days N --from DATE --json]
#   -> .nudge/demo/report.html (+ report.png), deliveries.jsonl, events.jsonl
# The stack keeps running afterwards (stop it with `infra/stack.sh down`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v cargo >/dev/null || { echo "demo: cargo not found; install Rust (rustup) first" >&2; exit 1; }
t0=$SECONDS
echo "==> installing tools (first run only)" >&2
"$ROOT/infra/stack.sh" install
echo "==> local stack" >&2
"$ROOT/infra/stack.sh" up
eval "$("$ROOT/infra/stack.sh" env)"
# The simulation runs thousands of handler invocations: an optimised build (profile `fast`:
# no LTO) makes it minutes faster than a debug one. Cargo shows its progress on a first build.
echo "==> building the nudge CLI (profile fast; the first build takes several minutes), then simulating" >&2
OUT="$ROOT/.nudge/demo"
cargo run --locked --profile fast -p nudge-infra --bin nudge -- demo --out-dir "$OUT" "$@"
echo "==> checking the report in headless Chromium" >&2
node "$ROOT/infra/report-check.mjs" "$OUT/report.html" "$OUT/report.png" >"$OUT/report-check.json" ||
  { cat "$OUT/report-check.json" >&2; echo "demo: the report check failed" >&2; exit 1; }
echo "screenshot:   $OUT/report.png" >&2
echo "demo: done in $((SECONDS - t0)) s; open $OUT/report.html in a browser" >&2
