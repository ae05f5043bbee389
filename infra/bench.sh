#!/usr/bin/env bash
# One benchmark run: every capability's figures in one table (stdout) and as JSON
# (.nudge/bench/bench.json), the functions' release bootstraps and a Python + boto3 peer
# measured side by side through a local Lambda runtime API.
#
#   infra/bench.sh                      full run (about 10 minutes after the builds)
#   infra/bench.sh --quick              smoke run: every measurement at small sizes
#   infra/bench.sh --profile release-z  bootstraps built with another profile (Cargo.toml)
#   infra/bench.sh --no-peer            without the Python peer
#   infra/bench.sh --json PATH          the JSON elsewhere (for comparing commits)
#
# Installs what it needs (the local stack's tools, the peer's virtualenv in .nudge/peer-venv),
# starts DynamoDB Local and moto on 127.0.0.1 unless running (and leaves them running, like
# demo.sh; infra/stack.sh down stops them), builds the bootstraps (`--profile`, default
# `release`: LTO, the first build takes 5-15 minutes and shows cargo's progress) and the
# `nudge` CLI (profile `fast`; `dev` when the bootstraps are `dev`), then runs `nudge bench`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARGO=${CARGO:-cargo}
cd "$ROOT"

profile=release
args=()
while (($#)); do
  case $1 in
    --profile) [[ $# -ge 2 ]] || { echo "bench.sh: --profile needs a value" >&2; exit 2; }
      profile=$2; shift 2 ;;
    --profile=*) profile=${1#--profile=}; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
# cargo's `dev` profile builds into target/debug.
dir=$profile; [[ $profile == dev ]] && dir=debug
cli_profile=fast; [[ $profile == dev ]] && cli_profile=dev
cli_dir=$cli_profile; [[ $cli_profile == dev ]] && cli_dir=debug
target=${CARGO_TARGET_DIR:-$ROOT/target}

echo "==> local stack" >&2
"$ROOT/infra/stack.sh" install >&2
"$ROOT/infra/stack.sh" up >&2
eval "$("$ROOT/infra/stack.sh" env)"

if [[ " ${args[*]-} " != *" --no-peer "* ]]; then
  echo "==> the Python peer's virtualenv" >&2
  "$ROOT/infra/peer/install.sh" >&2
fi

echo "==> building the bootstraps (profile $profile)" >&2
"$CARGO" build --locked --profile "$profile" -p ingest -p health -p reminders -p milestones -p empty-handler
echo "==> building the nudge CLI (profile $cli_profile)" >&2
"$CARGO" build --locked --profile "$cli_profile" -p nudge-infra --bin nudge

echo "==> nudge bench ${args[*]-}" >&2
exec "$target/$cli_dir/nudge" bench --bootstraps "$target/$dir" "${args[@]}"
