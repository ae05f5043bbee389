#!/usr/bin/env bash
# The project's test command: ./infra/test.sh
#   tools (stack.sh install) -> cargo fmt --check -> cargo clippy -D warnings -> template lint
#   -> local stack up -> SAM sample events (sam-events.sh) -> bench smoke run (bench.sh --quick
#   on the debug builds: every measurement runs, the Python peer does the same work) -> cargo
#   test --workspace (all with the stack's SDK environment)
# Template lint, the SAM sample events and the bench run before the tests so that cargo test's
# summary lines close the output.
# The stack is stopped on exit if (and only if) this run started it; NUDGE_KEEP_STACK=1 keeps it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK="$ROOT/infra/stack.sh"
CARGO=${CARGO:-cargo}
cd "$ROOT"

t_start=$SECONDS
failed=()
step() {
  local name=$1; shift
  echo "==> $name"
  local t0=$SECONDS
  if "$@"; then
    echo "==> $name: ok ($((SECONDS - t0))s)"
  else
    echo "==> $name: FAILED ($((SECONDS - t0))s)" >&2
    failed+=("$name")
  fi
}

"$STACK" install

step "cargo fmt" "$CARGO" fmt --all --check
step "cargo clippy" "$CARGO" clippy --workspace --all-targets --locked -- -D warnings
step "template lint" "$ROOT/infra/lint.sh"

# Stop on exit what this run started (services already running stay as they were).
owned_before=$("$STACK" owned)
stop_started() {
  local rc=$? name started=()
  if [[ ${NUDGE_KEEP_STACK:-0} != 1 ]]; then
    for name in $("$STACK" owned 2>/dev/null || true); do
      grep -qx "$name" <<<"$owned_before" || started+=("$name")
    done
    if ((${#started[@]})); then "$STACK" down "${started[@]}" >/dev/null || true; fi
  fi
  exit "$rc"
}
trap stop_started EXIT
trap 'exit 130' INT TERM

if "$STACK" up; then
  eval "$("$STACK" env)"
  step "SAM sample events" "$ROOT/infra/sam-events.sh"
  step "bench smoke run" "$ROOT/infra/bench.sh" --quick --profile dev --json "$ROOT/.nudge/bench/smoke.json"
  step "cargo test" "$CARGO" test --workspace --locked
else
  failed+=("local stack")
fi

if ((${#failed[@]})); then
  echo "test.sh: FAILED: $(IFS=,; echo "${failed[*]}") ($((SECONDS - t_start))s)" >&2
  exit 1
fi
echo "test.sh: all checks green: fmt, clippy, template lint, SAM sample events, bench smoke run, cargo test ($((SECONDS - t_start))s)"
