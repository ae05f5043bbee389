"""The daily health score's queue worker as a Python 3 + boto3 Lambda: the peer of the Rust
`health` function fed by its SQS queue.

It takes the same SQS event (each record's body a work item
`{"now": "<RFC 3339>", "shard": n, "shards": m, "after"?: "<account id>"}`) and answers the
same partial-batch response, `{"batchItemFailures": [{"itemIdentifier": <messageId>}]}`,
naming only the records that failed. Per work item, as the Rust worker does: the active and
shadow models are read from the table (`SYS/MODELS`, `SYS/MODEL#<version>`; the built-in
"default-1" while none is selected); the shard of the account index `ACCOUNTS#<shard>` is
walked 100 accounts a page, 8 accounts at once; per account three reads run in parallel (the
`DAY#` rollups of the last 61 days, `PROFILE..SAT` in one Query, `FIRSTS`), the account is
scored (`health_score`) and one snapshot `HEALTH#<local day>#<model version>` is written per
model. After 1,000 accounts the rest of the shard is handed on as a new work item on the
queue named `health` in `NUDGE_QUEUE_URLS`.

Known differences from the Rust worker, on purpose: the playbooks are left out (band-change
and upsell nudges, the `PULSE` write, the previous-score read they need): a steady day, where
no band moves, plans nothing in Rust either. Scheduled (EventBridge) invocations, which only
enqueue the shards, are not served. A stored model's numeric rules are not re-validated here.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import boto3
from botocore.config import Config

import health_score as hs

ACCOUNTS_PER_MESSAGE = 1_000
CONCURRENCY = 8
PAGE = 100
TICKET_DAYS_READ = 90
NPS_ANSWERS_READ = 10
READS_PER_ACCOUNT = 3
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _queue_urls() -> dict[str, str]:
    pairs = [p.split("=", 1) for p in os.environ.get("NUDGE_QUEUE_URLS", "").split(",") if "=" in p]
    return {name.strip(): url.strip() for name, url in pairs}


# Init, once per container.
TABLE = os.environ["NUDGE_TABLE"]
TTL_DAYS = int(os.environ.get("NUDGE_RAW_EVENT_TTL_DAYS", "400"))
QUEUE_URL = _queue_urls().get("health")
CLIENT_CONFIG = Config(max_pool_connections=CONCURRENCY * READS_PER_ACCOUNT,
                       retries={"mode": "standard", "max_attempts": 3})
DDB = boto3.client("dynamodb", config=CLIENT_CONFIG)
SQS = boto3.client("sqs", config=CLIENT_CONFIG) if QUEUE_URL else None
ACCOUNTS = ThreadPoolExecutor(max_workers=CONCURRENCY)
READS = ThreadPoolExecutor(max_workers=CONCURRENCY * READS_PER_ACCOUNT)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Each SQS record is one work item; a failed item is reported alone, so it is retried
    without redoing the others."""
    if "Records" not in event:
        raise ValueError("not an SQS event: the peer serves the health queue only")
    failures = []
    for record in event["Records"]:
        try:
            score_item(record.get("body") or "")
        except Exception as e:
            print(json.dumps({"level": "WARN", "message": "work item failed",
                              "message_id": record.get("messageId"), "error": str(e)}))
            failures.append({"itemIdentifier": record.get("messageId") or ""})
    return {"batchItemFailures": failures}


def parse_time(text: str) -> datetime:
    """An RFC 3339 instant as UTC (stored timestamps and the work item's `now`)."""
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return t.astimezone(timezone.utc)


def score_item(body: str) -> dict[str, Any]:
    """Scores one shard from where the item starts, and hands the rest on past the limit."""
    item = json.loads(body)
    now, shard, shards = parse_time(item["now"]), int(item["shard"]), int(item["shards"])
    if not 0 <= shard < shards:
        raise ValueError(f"account index shard {shard} is not in 0..{shards}")
    active, shadow = models()
    after, seen, scored = item.get("after"), 0, 0
    while True:
        accounts, after = index_page(shard, after)
        results = list(ACCOUNTS.map(lambda a: score_account(a, active, shadow, now), accounts))
        seen, scored = seen + len(accounts), scored + sum(results)
        if after is None:
            break
        if seen >= ACCOUNTS_PER_MESSAGE:
            hand_on({**item, "after": after})
            break
    return {"shard": shard, "accounts": seen, "scored": scored, "handed_on": after is not None}


def hand_on(item: dict[str, Any]) -> None:
    if SQS is None:
        raise RuntimeError("no queue configured for health: add health=<queue url> to NUDGE_QUEUE_URLS")
    SQS.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps(item, separators=(",", ":")))


def get_item(pk: str, sk: str) -> dict[str, Any] | None:
    return DDB.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                        ReturnConsumedCapacity="TOTAL").get("Item")


def models() -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The active and shadow models as the Rust worker loads them, parsed again as data."""
    selection = get_item("SYS", "MODELS") or {}

    def load(version: str) -> dict[str, Any]:
        stored = get_item("SYS", f"MODEL#{version}")
        if stored is None:
            raise LookupError(f"model {version} is not stored")
        return hs.parse_model(stored["json"]["S"])

    active = selection.get("active", {}).get("S")
    shadow = selection.get("shadow", {}).get("S")
    return (load(active) if active else hs.parse_model(hs.DEFAULT_MODEL),
            load(shadow) if shadow else None)


def index_page(shard: int, after: str | None) -> tuple[list[tuple[str, datetime]], str | None]:
    """At most PAGE accounts of the shard after `after`, and where the next page starts."""
    pk = f"ACCOUNTS#{shard}"
    request: dict[str, Any] = dict(
        TableName=TABLE, KeyConditionExpression="#pk = :pk AND begins_with(#sk, :p)",
        ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
        ExpressionAttributeValues={":pk": {"S": pk}, ":p": {"S": "ACCT#"}},
        Limit=PAGE, ReturnConsumedCapacity="TOTAL")
    if after is not None:
        request["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": f"ACCT#{after}"}}
    page = DDB.query(**request)
    accounts = [(i["account_id"]["S"], parse_time(i["first_seen"]["S"])) for i in page["Items"]]
    last = page.get("LastEvaluatedKey")
    return accounts, (last["sk"]["S"].removeprefix("ACCT#") if last else None)


def query_all(**request: Any) -> list[dict[str, Any]]:
    items, start = [], None
    while True:
        page = DDB.query(**request, **({"ExclusiveStartKey": start} if start else {}),
                         ReturnConsumedCapacity="TOTAL")
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def between(pk: str, low: str, high: str) -> list[dict[str, Any]]:
    return query_all(TableName=TABLE, KeyConditionExpression="#pk = :pk AND #sk BETWEEN :a AND :b",
                     ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
                     ExpressionAttributeValues={":pk": {"S": pk}, ":a": {"S": low}, ":b": {"S": high}})


def health_record(account: str, first: date, last: date) -> list[dict[str, Any]]:
    """The three reads of one account in parallel: rollups, PROFILE..SAT, FIRSTS."""
    pk = f"ACCT#{account}"
    days = READS.submit(between, pk, f"DAY#{first.isoformat()}", f"DAY#{last.isoformat()}")
    state = READS.submit(between, pk, "PROFILE", "SAT")
    firsts = READS.submit(get_item, pk, "FIRSTS")
    found = firsts.result()
    return days.result() + state.result() + ([found] if found else [])


def score_account(account: tuple[str, datetime], active: dict, shadow: dict | None,
                  now: datetime) -> int:
    """Scores one account and writes its snapshot(s); 0 for an indexed account without a
    profile (not scored), else 1."""
    account_id, first_seen = account
    items = health_record(account_id, now.date() - timedelta(days=hs.HISTORY_DAYS + 1),
                          now.date() + timedelta(days=1))
    inputs = inputs_of(items, first_seen, now)
    if inputs is None:
        return 0
    ttl = (now + timedelta(days=TTL_DAYS) - EPOCH) // timedelta(seconds=1)
    for model, is_shadow in ((active, False), (shadow, True)):
        if model is not None:
            put_snapshot(account_id, hs.score(model, inputs), is_shadow, ttl)
    return 1


def put_snapshot(account_id: str, s: dict[str, Any], shadow: bool, ttl: int) -> None:
    DDB.put_item(TableName=TABLE, ReturnConsumedCapacity="TOTAL", Item={
        "pk": {"S": f"ACCT#{account_id}"},
        "sk": {"S": f"HEALTH#{s['day'].isoformat()}#{s['model']}"},
        "shadow": {"BOOL": shadow}, "score": {"N": str(s["score"])}, "band": {"S": s["band"]},
        "provisional": {"BOOL": s["provisional"]}, "detail": {"S": hs.detail_json(s)},
        "ttl": {"N": str(ttl)},
    })


def inputs_of(items: list[dict[str, Any]], first_seen: datetime, now: datetime) -> hs.Inputs | None:
    """The score's inputs from the stored items, as the Rust store and service build them."""
    usage, firsts, profile, account, sat = [], {}, None, {}, {}
    for item in items:
        sk = item["sk"]["S"]
        if sk.startswith("DAY#"):
            usage.append(day_of(item))
        elif sk == "FIRSTS":
            firsts = {k.removeprefix("first_") for k in item if k.startswith("first_")}
        elif sk == "PROFILE":
            account = item
            profile = profile_of(item)
        elif sk == "SAT":
            sat = item
    if profile is None:
        return None
    since = datetime.combine(now.date() + timedelta(days=1 - TICKET_DAYS_READ), time(), timezone.utc)
    tickets = tickets_of(sat, since)
    admin = account.get("admin_clock", {}).get("S")
    return hs.Inputs(
        profile=profile, first_seen=first_seen, usage=usage,
        steps_done={k.removeprefix("step_") for k in firsts if k.startswith("step_")},
        first_report="report" in firsts,
        open_tickets=[(sev, opened) for sev, opened, closed in tickets if closed is None or closed > now],
        recent_tickets=[(sev, opened) for sev, opened, _ in tickets],
        nps=nps_of(sat), admin_changed_at=parse_time(admin) if admin else None, now=now)


def day_of(item: dict[str, Any]) -> hs.Day:
    def n(name: str) -> int:
        return int(item.get(name, {}).get("N", "0"))
    return hs.Day(
        day=date.fromisoformat(item["sk"]["S"].removeprefix("DAY#")), logins=n("logins"),
        reports=n("reports"),
        features={k.removeprefix("f_"): n(k) for k in item if k.startswith("f_")},
        contacts=set(item.get("contacts", {}).get("SS", [])))


def profile_of(item: dict[str, Any]) -> dict[str, Any] | None:
    """The account profile map; a later `renewal_date` from `contract_renewed` wins."""
    m = item.get("profile", {}).get("M")
    if m is None:
        return None
    p: dict[str, Any] = {k: v["S"] if "S" in v else v.get("N") for k, v in m.items() if "M" not in v}
    p["renewals"], p["arr"] = int(p["renewals"]), float(p["arr"])
    p["contract_start"] = date.fromisoformat(p["contract_start"])
    p["renewal_date"] = date.fromisoformat(p["renewal_date"])
    renewed = item.get("renewal_date", {}).get("S")
    if renewed:
        p["renewal_date"] = max(p["renewal_date"], date.fromisoformat(renewed))
    return p


def tickets_of(sat: dict[str, Any], since: datetime) -> list[tuple[str, datetime, datetime | None]]:
    """(severity, opened_at, closed_at) of tickets opened since `since` or still open, oldest
    first; a close seen without its open is left out until the open arrives."""
    out = []
    for k, v in sat.items():
        if not k.startswith("to_"):
            continue
        opened = v["M"]
        close = sat.get(f"tc_{k[3:]}")
        closed = parse_time(close["M"]["closed_at"]["S"]) if close else None
        opened_at = parse_time(opened["opened_at"]["S"])
        if closed is None or opened_at >= since:
            out.append((opened["severity"]["S"], opened_at, closed, k[3:]))
    out.sort(key=lambda t: (t[1], t[3]))
    return [t[:3] for t in out]


def nps_of(sat: dict[str, Any]) -> list[tuple[int, datetime]]:
    """The newest NPS_ANSWERS_READ answers, newest first."""
    answers = [(parse_time(v["M"]["at"]["S"]), k[2:], int(v["M"]["score"]["N"]))
               for k, v in sat.items() if k.startswith("n_")]
    answers.sort(reverse=True)
    return [(score, at) for at, _, score in answers[:NPS_ANSWERS_READ]]
