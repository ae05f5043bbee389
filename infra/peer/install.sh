#!/usr/bin/env bash
# Creates .nudge/peer-venv (repository root, gitignored) with the Python peer's requirements.
# Idempotent: an existing venv is reused and pip only installs what is missing or different.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.nudge/peer-venv"
requirements="$here/requirements.txt"

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

command -v python3 >/dev/null || fail "python3 is not on PATH; install Python 3.11 or newer"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || fail "python3 is $(python3 -V 2>&1); the peer needs 3.11 or newer"

if [[ -x "$venv/bin/python" ]]; then
    echo "==> reusing $venv"
else
    echo "==> creating $venv"
    mkdir -p "$root/.nudge"
    python3 -m venv "$venv" || fail "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
fi

echo "==> upgrading pip"
"$venv/bin/python" -m pip install --quiet --upgrade pip || fail "could not upgrade pip in $venv"

echo "==> installing $(grep -cv '^\s*\(#\|$\)' "$requirements") requirements from $requirements"
"$venv/bin/python" -m pip install --quiet --requirement "$requirements" \
    || fail "pip could not install $requirements (network, or no wheel for this platform?)"

echo "==> checking imports"
"$venv/bin/python" -c 'import boto3, awslambdaric, zoneinfo; print("boto3", boto3.__version__)' \
    || fail "the venv's packages do not import"

echo "==> done: $venv/bin/python infra/peer/check.py"
