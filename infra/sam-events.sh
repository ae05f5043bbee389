#!/usr/bin/env bash
# AWS sample events through every function: the payloads `sam local generate-event` makes (HTTP
# API, scheduled, SNS, SQS) plus hostile variants of the HTTP API one, each sent to each of the
# four binaries under `cargo lambda watch`. Every invocation must end in a JSON answer or a
# clean error; a panic, a crashed function process or a hang fails the run (exit 1).
#
#   infra/sam-events.sh          after infra/stack.sh install and infra/stack.sh up
#
# Uses .venv/bin/sam and .venv/bin/cargo-lambda; builds the functions (debug, as watch runs
# them) and the `nudge` CLI, which creates a throw-away table. The watch server, its function
# processes, the table and the health queue are removed on exit, whatever happens.
# Environment: NUDGE_SAM_EVENTS_TIMEOUT (seconds per invocation, 60), NUDGE_SAM_EVENTS_KEEP=1
# (keep the events, answers and the watch log in the temp dir), CARGO, CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
SAM="$VENV/bin/sam"
CARGO_LAMBDA="$VENV/bin/cargo-lambda"
CARGO=${CARGO:-cargo}
INVOKE_TIMEOUT=${NUDGE_SAM_EVENTS_TIMEOUT:-60}
FUNCTIONS=(ingest reminders health milestones)
# The local-only keys of README's "Running functions locally" (infra/src/local.rs).
SIGNING_SECRET=DEV-ONLY-local-signing-secret-do-not-use-in-production-0000000000
LINK_KEYS='{"current":"local1","local1":"DEV-ONLY-local-link-key-do-not-use-in-production-00000000000"}'
cd "$ROOT"

die() { echo "sam-events: $*" >&2; exit 1; }
note() { echo "sam-events: $*" >&2; }

[[ -x $SAM && -x $CARGO_LAMBDA ]] || die "$SAM or $CARGO_LAMBDA is missing: run infra/stack.sh install"
command -v python3 >/dev/null || die "python3 not found"
"$ROOT/infra/stack.sh" status >/dev/null ||
  die "the local stack is not running (infra/stack.sh status): start it with infra/stack.sh up"
eval "$("$ROOT/infra/stack.sh" env)"

t_start=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nudge-sam-events.XXXXXX")
RUN_ID="sam-events-$$-$(date +%s)"
TABLE="nudge-$RUN_ID"
QUEUE="nudge-$RUN_ID-health"
WATCH_PID=""
INVOKE_PID=""
TABLE_CREATED=0
QUEUE_URL=""
mkdir -p "$WORK/events" "$WORK/out"

# Descendants of $1 (cargo lambda watch starts each function in its own process group, so
# killing the watch's group alone could leave a function behind).
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$child"
    descendants "$child"
  done
}

stop_watch() {
  [[ -n $WATCH_PID ]] || return 0
  local pids p i alive
  pids=$(descendants "$WATCH_PID" | tr '\n' ' ')
  kill -TERM -- "-$WATCH_PID" 2>/dev/null || true
  # shellcheck disable=SC2086  # a list of pids
  [[ -z ${pids// /} ]] || kill -TERM $pids 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive=0
    for p in "$WATCH_PID" $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "$WATCH_PID" $pids; do kill -KILL "$p" 2>/dev/null || true; done
  wait "$WATCH_PID" 2>/dev/null || true
  WATCH_PID=""
}

# The queue, and deleting the table, through boto3 in .venv (it comes with moto; it reads
# the stack's AWS_ENDPOINT_URL_* like the SDK does).
aws_py() { "$VENV/bin/python" - "$@"; }

cleanup() {
  local rc=$?
  [[ -z $INVOKE_PID ]] || kill "$INVOKE_PID" 2>/dev/null || true
  stop_watch
  if ((TABLE_CREATED)); then
    aws_py "$TABLE" <<'EOF' || note "could not delete table $TABLE"
import sys, boto3
ddb = boto3.client("dynamodb")
try:
    ddb.delete_table(TableName=sys.argv[1])
except ddb.exceptions.ResourceNotFoundException:
    pass  # create-table failed before creating it
EOF
  fi
  if [[ -n $QUEUE_URL ]]; then
    aws_py "$QUEUE_URL" <<'EOF' || note "could not delete queue $QUEUE_URL"
import sys, boto3
boto3.client("sqs").delete_queue(QueueUrl=sys.argv[1])
EOF
  fi
  if ((rc != 0)) || [[ ${NUDGE_SAM_EVENTS_KEEP:-0} == 1 ]]; then
    note "events, answers and the watch log kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------- events --
note "generating sample events with $("$SAM" --version)"
export SAM_CLI_TELEMETRY=0
gen() { # gen NAME SERVICE EVENT [OPTIONS...]: one `sam local generate-event` payload
  local name=$1; shift
  # From the temp dir: the project's samconfig.toml is for deploys, not for these.
  (cd "$WORK" && "$SAM" local generate-event "$@") >"$WORK/events/$name.json" ||
    die "sam local generate-event $* failed"
}
gen http-api apigateway http-api-proxy
gen http-api-unsubscribe apigateway http-api-proxy --method GET --path /unsubscribe
gen http-api-steps-done apigateway http-api-proxy --method POST --path /steps/done --body 't=v1.forged'
# SAM puts the domain name in requestContext.domainName; with no Host header it becomes the URL's host.
gen http-api-bad-port apigateway http-api-proxy --dns-suffix 'amazonaws.com:99999'
gen http-api-events-hostile apigateway http-api-proxy --path /events --body \
  '{"events":[{"event_id":"ok-1","account_id":"acme","contact_id":"u-1","type":"login","occurred_at":"2020-03-04T19:03:58Z"},{"event_id":"\u0000<script>","account_id":"../../etc/passwd","type":"login","occurred_at":"9999-99-99T99:99:99Z"},{"event_id":"big","account_id":"acme","type":"nps_response","occurred_at":"2020-03-04T19:03:58Z","properties":{"score":1e300,"comment":"<img src=x onerror=alert(1)>"}},{"event_id":"x","account_id":"acme","type":"drop table"}],"extra":[[[[[[[[[]]]]]]]]]}'
gen scheduled cloudwatch scheduled-event
gen sns sns notification
gen sqs sqs receive-message

# Variants SAM's options cannot express: edits of the generated HTTP API payload.
python3 - "$WORK/events" "$SIGNING_SECRET" <<'EOF' || die "editing the generated events failed"
import base64, copy, hashlib, hmac, json, sys
from pathlib import Path

d, secret = Path(sys.argv[1]), sys.argv[2].encode()
load = lambda name: json.loads((d / f"{name}.json").read_text())
def save(name, event):
    (d / f"{name}.json").write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")

base = load("http-api")
# isBase64Encoded with a body that is not base64.
e = copy.deepcopy(base); e["isBase64Encoded"] = True; e["body"] = '%%% {"events": []} %%%'
save("http-api-bad-base64", e)
# A scheme in X-Forwarded-Proto that no URL can start with.
e = copy.deepcopy(base); e["headers"]["x-forwarded-proto"] = "not a scheme"
save("http-api-bad-forwarded-proto", e)
# A quote, a space and a control byte in the path (SAM's --path breaks its own JSON on a quote).
e = copy.deepcopy(base); e["rawPath"] = '/events/"<x> y\u0001'
save("http-api-hostile-path", e)
# The hostile batch, signed with the local secret at the request's own time, so it gets past
# the signature check into parsing and storing.
e = load("http-api-events-hostile")
body = base64.b64decode(e["body"])
t = e["requestContext"]["timeEpoch"] // 1000
mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
e["headers"].update({"content-type": "application/json", "x-nudge-signature": f"t={t},v1={mac}"})
save("http-api-events-hostile", e)
EOF
EVENTS=(http-api http-api-unsubscribe http-api-steps-done http-api-events-hostile
  http-api-bad-base64 http-api-bad-port http-api-bad-forwarded-proto http-api-hostile-path
  scheduled sns sqs)
for ev in "${EVENTS[@]}"; do [[ -s $WORK/events/$ev.json ]] || die "event $ev was not generated"; done

# -------------------------------------------------------------------------------- build --
# `cargo lambda watch` runs `cargo run --bin <function>` at the root; building the same bins
# the same way (default members, so the same features) first shows cargo's progress and
# leaves watch nothing to compile.
note "building the functions (the first build takes several minutes)"
"$CARGO" build --bin ingest --bin reminders --bin health --bin milestones
note "building the nudge CLI"
"$CARGO" build -p nudge-infra --bin nudge

# -------------------------------------------------------------------- table, queue, watch --
TABLE_CREATED=1   # before: a create-table that fails half-way may still leave the table
"$CARGO" run -q -p nudge-infra --bin nudge -- create-table --name "$TABLE" >/dev/null ||
  die "could not create table $TABLE"
QUEUE_URL=$(aws_py "$QUEUE" <<'EOF'
import sys, boto3
print(boto3.client("sqs").create_queue(QueueName=sys.argv[1])["QueueUrl"])
EOF
) || die "could not create the SQS queue $QUEUE in moto"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WATCH_LOG="$WORK/watch.log"
note "starting cargo lambda watch on 127.0.0.1:$PORT (table $TABLE; log $WATCH_LOG)"
# setsid: its own process group, so stop_watch can signal it as a whole.
NUDGE_TABLE="$TABLE" NUDGE_SIGNING_SECRET="$SIGNING_SECRET" NUDGE_LINK_KEYS="$LINK_KEYS" \
  NUDGE_SENDER=nudge@nudge.test \
  NUDGE_CSM_TOPIC_ARN=arn:aws:sns:us-east-1:123456789012:nudge-csm-alerts \
  NUDGE_PUBLIC_BASE_URL=https://nudge.example.test \
  NUDGE_QUEUE_URLS="health=$QUEUE_URL" RUST_LOG=info \
  setsid "$CARGO_LAMBDA" lambda watch --invoke-address 127.0.0.1 --invoke-port "$PORT" --ignore-changes \
  </dev/null >"$WATCH_LOG" 2>&1 &
WATCH_PID=$!
for ((i = 0; ; i++)); do
  # Any HTTP answer (a 404 on /) means the runtime API listens.
  curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/" && break
  kill -0 "$WATCH_PID" 2>/dev/null || { tail -n 20 "$WATCH_LOG" >&2; die "cargo lambda watch exited during start-up"; }
  ((i < 300)) || { tail -n 20 "$WATCH_LOG" >&2; die "cargo lambda watch not listening on port $PORT after 30s"; }
  sleep 0.1
done

# ------------------------------------------------------------------------------- invoke --
# One invocation: the invoke CLI's answer, and the part of watch's log written meanwhile (the
# function's own stderr: panic messages, exits). A function process that exits leaves the
# invoke waiting forever, so the log is watched for that and the wait is bounded.
invoke() { # invoke FUNCTION EVENT -> $WORK/out/F.E.{out,err,log,rc}
  local fn=$1 ev=$2 base="$WORK/out/$1.$2" from pid rc=0 t0=$SECONDS
  from=$(stat -c %s "$WATCH_LOG")
  "$CARGO_LAMBDA" lambda invoke "$fn" --invoke-address 127.0.0.1 --invoke-port "$PORT" \
    --data-file "$WORK/events/$ev.json" --color never >"$base.out" 2>"$base.err" &
  pid=$!
  INVOKE_PID=$pid
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - t0 >= INVOKE_TIMEOUT)); then
      kill "$pid" 2>/dev/null || true; rc=124; break
    fi
    # (not `tail | grep -q`: with pipefail, grep closing early makes tail fail with SIGPIPE)
    if [[ $(tail -c +"$((from + 1))" "$WATCH_LOG") == *'command exited'* ]]; then
      sleep 0.5   # its last words
      kill "$pid" 2>/dev/null || true; rc=125; break
    fi
    sleep 0.1
  done
  if ((rc == 0)); then wait "$pid" || rc=$?; else wait "$pid" 2>/dev/null || true; fi
  INVOKE_PID=""
  tail -c +"$((from + 1))" "$WATCH_LOG" >"$base.log"
  echo "$rc" >"$base.rc"
}

total=$((${#FUNCTIONS[@]} * ${#EVENTS[@]}))
n=0
for fn in "${FUNCTIONS[@]}"; do
  [[ -t 2 ]] || note "invoking $fn with ${#EVENTS[@]} events"
  crashed=""
  for ev in "${EVENTS[@]}"; do
    n=$((n + 1))
    [[ ! -t 2 ]] || printf '\rsam-events: invoking %d/%d: %-11s %-30s' "$n" "$total" "$fn" "$ev" >&2
    # watch does not restart a function whose process exited: its next invocations would
    # only wait for the timeout.
    if [[ -n $crashed ]]; then
      : >"$WORK/out/$fn.$ev.out"; : >"$WORK/out/$fn.$ev.err"; echo "$crashed" >"$WORK/out/$fn.$ev.log"
      echo 126 >"$WORK/out/$fn.$ev.rc"
      continue
    fi
    invoke "$fn" "$ev"
    [[ $(cat "$WORK/out/$fn.$ev.rc") != 125 ]] || crashed=$ev
    kill -0 "$WATCH_PID" 2>/dev/null || { echo >&2; tail -n 20 "$WATCH_LOG" >&2; die "cargo lambda watch died during $fn <- $ev"; }
  done
done
[[ ! -t 2 ]] || printf '\r%-80s\r' '' >&2

# -------------------------------------------------------------------------------- table --
rc=0
python3 - "$WORK/out" "$INVOKE_TIMEOUT" "${FUNCTIONS[*]}" "${EVENTS[*]}" <<'EOF' || rc=$?
import json, re, sys
from pathlib import Path

out, timeout = Path(sys.argv[1]), sys.argv[2]
functions, events = sys.argv[3].split(), sys.argv[4].split()

def one_line(s, n=90):
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."

def summary(answer):
    if isinstance(answer, dict) and "statusCode" in answer:
        body = answer.get("body") or ""
        try:
            b = json.loads(body)
            if isinstance(b, dict) and "error" in b:
                body = b["error"]
            elif isinstance(b, dict):
                body = ", ".join(f"{k}={len(v) if isinstance(v, list) else v}" for k, v in b.items())
        except ValueError:
            title = re.search(r"<title>(.*?)</title>", body, re.S)
            body = title.group(1) if title else re.sub(r"<[^>]*>", " ", body)
        return f"HTTP {answer['statusCode']}: {body}"
    if isinstance(answer, dict) and "batchItemFailures" in answer:
        return f"SQS batch response, {len(answer['batchItemFailures'])} item(s) failed"
    return json.dumps(answer, separators=(",", ":"))

def verdict(fn, ev):
    part = lambda ext: (out / f"{fn}.{ev}.{ext}").read_text(errors="replace")
    rc, stdout, stderr, log = int(part("rc")), part("out"), part("err"), part("log")
    m = re.search(r"panicked at ([^\n]*)", log)
    if m or "Lambda panicked" in stdout + stderr:
        why = re.search(r"Lambda panicked[^\n]*", stderr)
        return False, "PANIC", one_line(why.group(0) if why else f"panicked at {m.group(1)}")
    if rc == 125:
        last = re.findall(r"^Error: .*", log, re.M)
        return False, "CRASH", "the function process exited: " + one_line(last[-1] if last else log[-300:])
    if rc == 126:
        return False, "SKIP", f"not invoked: the function process exited at {log.strip()}"
    if rc == 124:
        return False, "HANG", f"no answer within {timeout}s"
    if rc == 0:
        try:
            return True, "answer", one_line(summary(json.loads(stdout)))
        except ValueError:
            return False, "BAD", "not JSON: " + one_line(stdout)
    # cargo lambda invoke prints a function error as "Error: <errorType>" then "× <errorMessage>".
    m = re.search(r"Error:\s*(\S[^\n]*)\n(.*)", stderr, re.S)
    if not m:
        return False, "BAD", f"invoke failed (exit {rc}): " + one_line(stderr)
    etype = m.group(1).strip()
    message = re.sub(r"Was this behavior unexpected\?.*", "", m.group(2), flags=re.S)
    message = re.sub(r"[×│]", " ", message).replace(
        "failed to deserialize the incoming data into the function's payload type:", "not its payload type:")
    message = one_line(message)
    if re.search(r"panic|Runtime\.ExitError|core::any::Any", etype, re.I):
        return False, "PANIC", f"{etype}: {message}"
    return True, "error", f"{etype}: {message}"

bad = 0
print(f"{'function':<11} {'event':<30} result")
for fn in functions:
    for ev in events:
        ok, kind, text = verdict(fn, ev)
        bad += not ok
        print(f"{fn:<11} {ev:<30} {kind:<6} {text}")
print(f"{len(functions) * len(events) - bad} of {len(functions) * len(events)} clean (an answer or a clean error)"
      + (f"; {bad} panicked, crashed, hung or were skipped after a crash" if bad else ""))
sys.exit(1 if bad else 0)
EOF
note "done in $((SECONDS - t_start))s"
exit "$rc"
