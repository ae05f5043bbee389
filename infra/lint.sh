#!/usr/bin/env bash
# Template checks: sam validate --lint, cfn-lint, checkov (own virtualenv .venv-checkov).
# Usage: infra/lint.sh [template]   (default: <repo>/template.yaml)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INFRA="$ROOT/infra"
TEMPLATE=${1:-$ROOT/template.yaml}
CHECKOV_VENV="$ROOT/.venv-checkov"
cd "$ROOT"

"$INFRA/stack.sh" install

# checkov's pins clash with aws-sam-cli's, hence a separate virtualenv.
install_checkov() {
  local stamp="$CHECKOV_VENV/.nudge-stamp" want logf="$ROOT/.nudge/install-checkov.log"
  want="$(sha256sum <"$INFRA/requirements-checkov.txt" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $CHECKOV_VENV/bin/checkov ]]; then return 0; fi
  mkdir -p "$ROOT/.nudge"
  echo "lint: installing checkov into .venv-checkov (log: .nudge/install-checkov.log)" >&2
  if ! { { [[ -x $CHECKOV_VENV/bin/python ]] || python3 -m venv "$CHECKOV_VENV"; } &&
    "$CHECKOV_VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$INFRA/requirements-checkov.txt"; } >"$logf" 2>&1; then
    tail -n 40 "$logf" >&2; echo "lint: pip install checkov failed" >&2; exit 1
  fi
  echo "$want" >"$stamp"
}
install_checkov

# sam and cfn-lint need a region; nothing here talks to AWS, the credentials are dummies.
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true

failed=()
run() {
  local name=$1; shift
  echo "== $name"
  if "$@"; then echo "lint: $name ok"; else failed+=("$name"); echo "lint: $name FAILED" >&2; fi
}
run "sam validate --lint" "$ROOT/.venv/bin/sam" validate --lint -t "$TEMPLATE"
run cfn-lint "$ROOT/.venv/bin/cfn-lint" "$TEMPLATE"
# checkov exits 0 when it cannot parse the template at all: a parsing error is a failure here.
checkov_strict() {
  local out rc=0
  out=$(env BC_SKIP_MAPPING=TRUE "$CHECKOV_VENV/bin/checkov" -f "$TEMPLATE" \
    --framework cloudformation --skip-download --compact --quiet 2>&1) || rc=$?
  printf '%s\n' "$out"
  if grep -Eq 'Parsing errors: [1-9]' <<<"$out"; then return 1; fi
  return "$rc"
}
run checkov checkov_strict

if ((${#failed[@]})); then
  echo "lint: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: template OK (sam validate --lint, cfn-lint, checkov)"
