"""Self-check of the Python peer against the local stack (run with the peer venv's python).

Proves both handlers work: the score port reproduces two Rust golden accounts; then, on a
table shaped like production, it creates a throw-away table
with the `nudge` CLI, ingests 100 `account_upserted` events, then a signed batch of 500
logins and feature uses (100 accounts, `+09:00` offsets) through the ingest handler in
process, resends it (all duplicates), reads raw records and rollups back; stores and
activates a health model with the CLI, runs the health handler over every index shard,
checks one snapshot per account, and has the Rust CLI (`nudge explain`) read a peer snapshot
back. The table is deleted at the end whatever happened.

Environment: the stack's (`eval "$(infra/stack.sh env)"`; read from that script when
unset) and NUDGE_BIN, the `nudge` CLI (default: target/fast/nudge of this repository).
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SECRET = "peer-check-signing-secret"
ACCOUNTS = 100
EVENTS = 500
JST = timezone(timedelta(hours=9))


def stack_env() -> None:
    """The local stack's endpoints and fake credentials, unless already exported."""
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        return
    out = subprocess.run([str(ROOT / "infra/stack.sh"), "env"], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        os.environ[name] = shlex.split(value)[0] if value else ""


def nudge(*args: str) -> str:
    binary = os.environ.get("NUDGE_BIN", str(ROOT / "target/fast/nudge"))
    done = subprocess.run([binary, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nudge {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        raise SystemExit(f"check failed: {what}")


def apigw_event(events: list[dict], now_ms: int, b64: bool = False) -> dict[str, Any]:
    """A signed HTTP API (payload 2.0) `POST /events`, as API Gateway hands it to Lambda."""
    import peer_events
    body = json.dumps({"events": events}).encode()
    signature = peer_events.sign(SECRET.encode(), now_ms // 1000, body)
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/events", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "peer.example",
                    "x-nudge-signature": signature},
        "requestContext": {
            "accountId": "123456789012", "apiId": "peer", "domainName": "peer.example",
            "stage": "$default", "requestId": str(uuid.uuid4()), "routeKey": "$default",
            "time": "", "timeEpoch": now_ms,
            "http": {"method": "POST", "path": "/events", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "peer-check"},
        },
        "body": base64.b64encode(body).decode() if b64 else body.decode(),
        "isBase64Encoded": b64,
    }


def accounts_batch(now: datetime) -> list[dict]:
    at = (now - timedelta(days=30)).astimezone(JST).isoformat(timespec="seconds")
    return [{
        "event_id": f"acct-{a}", "account_id": f"acme-{a:03d}", "type": "account_upserted",
        "occurred_at": at,
        "properties": {"name": f"Acme {a}", "plan": ["premium", "standard", "starter"][a % 3],
                       "industry": "retail", "timezone": "Asia/Tokyo", "locale": "ja-JP",
                       "contract_start": "2025-01-15", "renewal_date": "2027-01-15",
                       "renewals": a % 3, "arr": 5000.0 + 1000 * a},
    } for a in range(ACCOUNTS)]


def usage_batch(now: datetime) -> list[dict]:
    """500 events: 5 per account, logins and key-feature uses spread over 20 Tokyo days."""
    features = ["dashboard", "report_builder", "integration", "workflow"]
    events = []
    for n in range(EVENTS):
        a = n % ACCOUNTS
        at = (now - timedelta(days=1 + n % 20, minutes=n)).astimezone(JST)
        event = {"event_id": f"use-{n}", "account_id": f"acme-{a:03d}",
                 "contact_id": f"u-{a}-{n % 3}", "occurred_at": at.isoformat(timespec="milliseconds")}
        if n % 2 == 0:
            event.update(type="login")
        else:
            event.update(type="feature_used", properties={"feature": features[n % 4]})
        events.append(event)
    return events


def invoke_ingest(handler: Any, events: list[dict], b64: bool = False) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    started = time.perf_counter()
    resp = handler(apigw_event(events, now_ms, b64), None)
    took = (time.perf_counter() - started) * 1000
    body = json.loads(resp["body"])
    summary = {k: v if isinstance(v, int) else len(v) for k, v in body.items()}
    print(f"     ingest {len(events)} events -> {resp['statusCode']} {summary} in {took:.0f} ms")
    if body.get("rejected"):
        print(f"     first rejection: {body['rejected'][0]}")
    return {"status": resp["statusCode"], **body}


def partition(ddb: Any, table: str, account: str, prefix: str) -> list[dict]:
    items, start = [], None
    while True:
        page = ddb.query(TableName=table, ConsistentRead=True,
                         KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                         ExpressionAttributeValues={":pk": {"S": f"ACCT#{account}"}, ":p": {"S": prefix}},
                         **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def check_ingest(ingest: Any, ddb: Any, table: str, now: datetime) -> None:
    out = invoke_ingest(ingest.handler, accounts_batch(now))
    check(out["status"] == 200 and out["accepted"] == ACCOUNTS, f"{ACCOUNTS} account_upserted accepted")
    batch = usage_batch(now)
    out = invoke_ingest(ingest.handler, batch)
    check(out["status"] == 200 and out["accepted"] == EVENTS and not out["rejected"] and not out["retry"],
          f"accepted={EVENTS}")
    out = invoke_ingest(ingest.handler, batch, b64=True)
    check(out["accepted"] == 0 and out["duplicates"] == EVENTS, f"resent (base64 body): duplicates={EVENTS}")
    bad = dict(apigw_event(batch[:1], int(time.time() * 1000)), body='{"events":[]}')
    check(ingest.handler(bad, None)["statusCode"] == 401, "a body changed after signing is refused (401)")
    raw, days = [], []
    for a in range(ACCOUNTS):
        raw += partition(ddb, table, f"acme-{a:03d}", "EVT#")
        days += partition(ddb, table, f"acme-{a:03d}", "DAY#")
    usage = [r for r in raw if r["type"]["S"] != "account_upserted"]
    check(len(usage) == EVENTS and len(raw) == EVENTS + ACCOUNTS, f"{len(raw)} raw records (EVT#)")
    check(all(r["state"]["S"] == "applied" and "applying_at" not in r for r in raw),
          "every raw record is applied")
    total = lambda name: sum(int(d.get(name, {}).get("N", "0")) for d in days)
    features = sum(int(v["N"]) for d in days for k, v in d.items() if k.startswith("f_"))
    logins = sum(1 for e in batch if e["type"] == "login")
    check(total("events") == EVENTS and total("logins") == logins and features == EVENTS - logins,
          f"{len(days)} rollups (DAY#): events={total('events')} logins={total('logins')} "
          f"feature uses={features}")
    sample = next(e for e in batch if e["account_id"] == "acme-007")
    local_day = datetime.fromisoformat(sample["occurred_at"]).date().isoformat()
    check(any(d["pk"]["S"] == "ACCT#acme-007" and d["sk"]["S"] == f"DAY#{local_day}" for d in days),
          "rollup days are the accounts' Tokyo days")


def check_health(health: Any, ddb: Any, table: str, now: datetime, version: str) -> None:
    run_at = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    records = [{"messageId": f"m-{shard}", "receiptHandle": "r", "eventSource": "aws:sqs",
                "body": json.dumps({"now": run_at, "shard": shard, "shards": 8})}
               for shard in range(8)]
    started = time.perf_counter()
    out = health.handler({"Records": records}, None)
    took = (time.perf_counter() - started) * 1000
    print(f"     health: 8 work items -> {out} in {took:.0f} ms")
    check(out == {"batchItemFailures": []}, "no work item failed")
    snapshots = []
    for a in range(ACCOUNTS):
        snapshots += partition(ddb, table, f"acme-{a:03d}", "HEALTH#")
    scores = [int(s["score"]["N"]) for s in snapshots]
    check(len(snapshots) == ACCOUNTS and all(s["sk"]["S"].endswith(f"#{version}") for s in snapshots),
          f"one snapshot per account under model {version}")
    check(all(0 <= s <= 100 for s in scores),
          f"scores in 0-100 (min {min(scores)}, max {max(scores)}, "
          f"bands {sorted({s['band']['S'] for s in snapshots})})")
    mine = next(s for s in snapshots if s["pk"]["S"] == "ACCT#acme-007")
    day = mine["sk"]["S"].split("#")[1]
    explained = json.loads(nudge("explain", "acme-007", "--json", "--date", day, "--table", table))
    text = json.dumps(explained)
    check(f'"score": {mine["score"]["N"]}' in text,
          f"the Rust CLI reads the peer's snapshot back (nudge explain: score {mine['score']['N']})")


def check_goldens() -> None:
    """The port scores the Rust golden accounts A (82, green) and B (16, red) the same."""
    import health_score as hs

    def at(y: int, mo: int, d: int, h: int = 0) -> datetime:
        return datetime(y, mo, d, h, tzinfo=timezone.utc)

    def days(today: Any, logins: list, feats: list, contacts: list, reports: list) -> list:
        by_age: dict[int, Any] = {}
        day = lambda age: by_age.setdefault(age, hs.Day(day=today - timedelta(days=age)))
        for ages, per in logins:
            for age in ages:
                day(age).logins += per
        for age, name, n in feats:
            day(age).features[name] = day(age).features.get(name, 0) + n
        for age, c in contacts:
            day(age).contacts.add(c)
        for age, n in reports:
            day(age).reports += n
        return list(by_age.values())

    def profile(tz: str, plan: str, arr: float, start: Any, renewal: Any, renewals: int) -> dict:
        return dict(name="Acme", plan=plan, industry="m", timezone=tz, locale="en",
                    contract_start=start, renewal_date=renewal, renewals=renewals, arr=arr)

    d, now, model = datetime.date, at(2026, 6, 15, 3), hs.parse_model(hs.DEFAULT_MODEL)
    a = hs.Inputs(
        profile("Asia/Tokyo", "premium", 60000.0, d(at(2024, 6, 1)), d(at(2027, 6, 1)), 2),
        at(2026, 1, 1), days(d(at(2026, 6, 15)), [(range(1, 9), 2), (range(15, 25), 2)],
                             [(2, "report_builder", 10), (2, "dashboard", 10), (2, "integration", 10)],
                             [(1, "u1"), (2, "u2"), (3, "u3"), (4, "u4")], [(3, 2)]),
        {"invite_users", "import_data"}, True, [("low", at(2026, 6, 10))],
        [("low", at(2026, 6, 10)), ("medium", at(2026, 5, 25))],
        [(9, at(2026, 5, 20)), (8, at(2025, 12, 1))], None, now)
    b = hs.Inputs(
        profile("America/New_York", "growth", 20000.0, d(at(2025, 8, 26)), d(at(2026, 7, 29)), 1),
        at(2025, 9, 1), days(d(at(2026, 6, 14)), [(range(1, 5), 1), (range(15, 25), 2)],
                             [(3, "report_builder", 5), (5, "dashboard", 5)], [(2, "a"), (2, "b")], []),
        {"invite_users", "import_data"}, True, [("high", at(2026, 6, 5)), ("urgent", at(2026, 6, 12))],
        [("high", at(2026, 6, 5)), ("urgent", at(2026, 6, 12)), ("low", at(2026, 5, 20)),
         ("low", at(2026, 5, 25))], [(4, at(2026, 6, 1, 12)), (7, at(2026, 1, 10))], None, now)
    for name, inputs, want in (("A", a, (82, "green", "high_touch", "operation")),
                               ("B", b, (16, "red", "low_touch", "pre_renewal"))):
        s = hs.score(model, inputs)
        got = (s["score"], s["band"], s["tier"], s["phase"])
        check(got == want, f"golden {name} scores as in Rust: {got}")


def store_model(table: str, version: str) -> None:
    """Stores a copy of the built-in model under `version` and activates it, with the CLI."""
    shown = json.loads(nudge("model", "show", "--table", table))["model"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({**shown, "version": version}, f)
    try:
        nudge("model", "set", f.name, "--table", table)
        nudge("model", "activate", version, "--table", table)
    finally:
        os.unlink(f.name)


def main() -> None:
    stack_env()
    table = f"peer-check-{uuid.uuid4().hex[:8]}"
    os.environ.update(NUDGE_TABLE=table, NUDGE_SIGNING_SECRET=SECRET)
    sys.path.insert(0, str(HERE))
    import boto3
    ddb = boto3.client("dynamodb")
    print(f"     table {table} at {os.environ['AWS_ENDPOINT_URL_DYNAMODB']}")
    nudge("create-table", "--name", table)
    try:
        check_goldens()
        ingest = importlib.import_module("ingest_handler")
        health = importlib.import_module("health_handler")
        now = datetime.now(timezone.utc)
        check_ingest(ingest, ddb, table, now)
        version = "peer-check-1"
        store_model(table, version)
        check_health(health, ddb, table, now, version)
        print("all checks passed")
    finally:
        ddb.delete_table(TableName=table)
        print(f"     table {table} deleted")


if __name__ == "__main__":
    main()
