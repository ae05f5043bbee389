"""`POST /events` as a Python 3 + boto3 Lambda: the peer of the Rust `ingest` function.

It takes the same API Gateway HTTP API (payload 2.0) event and answers the same response:
receive time from `requestContext.timeEpoch`, body size, content type, the
`x-nudge-signature` HMAC (current and previous secret, constant-time compare), then the batch
validated event by event (`peer_events`). It writes what the Rust store writes, in the same
order and with the same requests, so a crash or a resend neither loses nor double-counts:

1. the raw event `ACCT#<id>/EVT#<event_id>`, conditionally, in state `applying`: the
   de-duplication point (a record found still `applying` is applied again); events whose
   count is their only effect (`login`, `feature_used`, `report_created`) get no write here;
2. idempotent effects: `account_upserted` sets the profile (last writer wins by
   `occurred_at`) and lists the account in the index `ACCOUNTS#<shard>`; `nps_response` adds
   its answer to the `SAT` item; then one `FIRSTS` write per account (`if_not_exists`);
3. the usage rollup `DAY#<local day>` (the day in the profile's time zone), one transaction
   per (account, day) with its recorded events' `applying -> applied` and the count-only
   events' records created `applied` (conditionally: the de-duplication point for them), so
   each is counted once; events without usage are marked `applied` alone.

Known differences from the Rust function, on purpose: only `login`, `feature_used`,
`report_created`, `nps_response` and `account_upserted` are implemented (other types are
rejected per event); the feature hooks are not run (milestones' onboarding agenda and first
congratulations, reminders' zone change, the health admin play), nor the strong profile read
after a stale `account_upserted` that only serves the zone hook; SES feedback over SNS and the
other HTTP routes are not served.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

import peer_events as ev
from peer_events import Event, EventError

CONCURRENCY = 32
COUNT_LIMIT = 99
MAX_DAY_CONTACTS = 100
ZONE_TTL = timedelta(minutes=15)
CACHE_LIMIT = 100_000
RETRY_AFTER_SECS = 5
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
USAGE = {"login", "feature_used", "report_created", "nps_response"}
COUNT_ONLY = {"login", "feature_used", "report_created"}
THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException",
             "RequestLimitExceeded", "TransactionConflictException"}


def _secrets() -> list[bytes]:
    """The current and the previous signing secret; refused at init if too short, as Rust does."""
    found = []
    for name in ("NUDGE_SIGNING_SECRET", "NUDGE_SIGNING_SECRET_PREVIOUS"):
        value = os.environ.get(name)
        if value is None:
            continue
        if len(value.strip()) < 16:
            raise RuntimeError(f"{name}: the secret is empty or shorter than 16 characters")
        found.append(value.strip().encode())
    if not found:
        raise RuntimeError("NUDGE_SIGNING_SECRET is required")
    return found


# Init, once per container: clients, pool and settings are reused by every invocation.
TABLE = os.environ["NUDGE_TABLE"]
SECRETS = _secrets()
TTL_DAYS = int(os.environ.get("NUDGE_RAW_EVENT_TTL_DAYS", "400"))
SHARDS = int(os.environ.get("NUDGE_HEALTH_INDEX_SHARDS", "8"))
DDB = boto3.client("dynamodb", config=Config(
    max_pool_connections=CONCURRENCY, retries={"mode": "standard", "max_attempts": 3}))
POOL = ThreadPoolExecutor(max_workers=CONCURRENCY)
LOCK = threading.Lock()
KNOWN_FIRSTS: set[tuple[str, str]] = set()
KNOWN_ZONES: dict[str, tuple[str | None, datetime]] = {}
FULL_DAYS: set[tuple[str, date]] = set()


class StoreError(Exception):
    """A failed write; `retryable` decides between `retry` and a `rejected` verdict."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def store_error(e: Exception) -> StoreError:
    """Maps a boto3 error to the Rust store's kinds and messages."""
    if isinstance(e, StoreError):
        return e
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "Unknown")
        if code in THROTTLED:
            return StoreError("the table is throttling requests; retry later", True)
        if code in ("InternalServerError", "ServiceUnavailable"):
            return StoreError(f"the table is unavailable: {code}", True)
        message = e.response.get("Error", {}).get("Message", "no message")
        return StoreError(f"store error: {code}: {message}", False)
    return StoreError(f"the table is unavailable: {e}", True)


def is_conditional(e: ClientError) -> bool:
    return e.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def ts(t: datetime) -> str:
    """A stored timestamp: RFC 3339 UTC with milliseconds, so string order is time order."""
    u = t.astimezone(timezone.utc)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def run_all(fn: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
    """`fn` over `items` on the shared pool (at most CONCURRENCY requests in flight)."""
    return list(POOL.map(fn, items))


# --- HTTP edge ------------------------------------------------------------------------------


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry: routes `POST /events` (any stage prefix) like the Rust HTTP edge."""
    http = event.get("requestContext", {}).get("http", {})
    path = (event.get("rawPath") or http.get("path") or "").rstrip("/")
    if path.rsplit("/", 1)[-1] != "events":
        return response(404, {"error": f"no route for {path}"})
    if http.get("method", "").upper() != "POST":
        return response(405, {"error": "use POST /events with a JSON body"})
    return post_events(event)


def response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict:
    """An HTTP API (payload 2.0) response with a compact JSON body."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        "isBase64Encoded": False,
        "cookies": [],
    }


def post_events(event: dict[str, Any]) -> dict[str, Any]:
    try:
        body = request_body(event)
    except ValueError:
        return response(400, {"error": "the body is flagged base64 but is not base64"})
    epoch_ms = event.get("requestContext", {}).get("timeEpoch") or 0
    if epoch_ms <= 0:
        return response(400, {"error": "request has no receive time (requestContext.timeEpoch); "
                                       "send it through the HTTP API"})
    now = EPOCH + timedelta(milliseconds=epoch_ms)
    if len(body) > ev.MAX_BODY_BYTES:
        return response(413, {"error": f"request body is {len(body)} bytes; the limit is "
                                       f"{ev.MAX_BODY_BYTES} bytes"})
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    ct = headers.get("content-type")
    if ct is not None and not ct.lower().startswith("application/json"):
        return response(415, {"error": f"content-type must be application/json, got "
                                       f"{json.dumps(ct.lower())}"})
    refused = ev.verify(SECRETS, headers.get("x-nudge-signature"), body, epoch_ms // 1000)
    if refused:
        return response(401, {"error": refused})
    try:
        parsed = ev.parse_batch(body, now)
    except ev.EnvelopeError as e:
        return response(e.status, {"error": str(e)})
    out = ingest_batch(parsed, now)
    if out["accepted"] == 0 and out["duplicates"] == 0 and out["retry"]:
        return response(503, out, {"retry-after": str(RETRY_AFTER_SECS)})
    return response(200, out)


def request_body(event: dict[str, Any]) -> bytes:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(raw, validate=True)
    return raw.encode()


# --- The batch ------------------------------------------------------------------------------


class Batch:
    """One request's events and verdicts: failures are `None` (retry) or a reason (rejected)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.failed: dict[int, str | None] = {}
        self.lock = threading.Lock()

    def fail(self, index: int, err: StoreError) -> None:
        verdict = None if err.retryable else f"not stored: {err}"
        with self.lock:
            if self.failed.get(index) is None:
                self.failed[index] = verdict


HELD_BACK = StoreError("the table is unavailable: an earlier event of the account must be sent "
                       "again first", True)


def ingest_batch(parsed: list[Event | EventError], now: datetime) -> dict[str, Any]:
    """Never fails as a whole: each valid event ends accepted, duplicate, rejected or retry."""
    duplicates, rejected, valid, seen = 0, [], [], set()
    for i, e in enumerate(parsed):
        if isinstance(e, EventError):
            rejected.append({"index": i, "error": str(e)})
        elif (e.account_id, e.event_id) in seen:
            duplicates += 1
        else:
            seen.add((e.account_id, e.event_id))
            valid.append((i, e))
    batch = Batch(now)
    zones = batch_zones(e for _, e in valid)
    unrecorded = {i for i, e in valid if e.type in COUNT_ONLY}
    fresh, dup = insert_raw(batch, valid, unrecorded)
    apply_effects(batch, fresh)
    record_firsts(batch, fresh)
    late = count_rollups(batch, fresh, zones, unrecorded)
    confirmed = [e for i, e in fresh if i not in batch.failed and e.type not in USAGE]
    run_all(mark_applied, confirmed)
    for index, verdict in sorted(batch.failed.items()):
        if verdict is not None:
            rejected.append({"index": index, "error": verdict})
    return {
        "accepted": sum(1 for i, _ in fresh if i not in batch.failed and i not in late),
        "duplicates": duplicates + dup + len(late),
        "rejected": sorted(rejected, key=lambda r: r["index"]),
        "retry": sorted(i for i, v in batch.failed.items() if v is None),
    }


def batch_zones(events: Iterable[Event]) -> dict[str, str]:
    """Per account, the zone of its latest `account_upserted` in the body."""
    latest: dict[str, tuple[datetime, str]] = {}
    for e in events:
        if e.type == "account_upserted":
            slot = latest.get(e.account_id)
            if slot is None or e.at_utc >= slot[0]:
                latest[e.account_id] = (e.at_utc, e.properties["timezone"])
    return {a: z for a, (_, z) in latest.items()}


# --- 1. Raw records -------------------------------------------------------------------------


def raw_item(e: Event, now: datetime, applied: bool = False) -> dict[str, Any]:
    """`RawEventItem`: retention runs from the event (backfills older than a day: arrival);
    `applied` for a count-only event's record, created with its count."""
    expires = max(e.at_utc, now - timedelta(days=1)) + timedelta(days=TTL_DAYS)
    item = {
        "pk": {"S": f"ACCT#{e.account_id}"}, "sk": {"S": f"EVT#{e.event_id}"},
        "type": {"S": e.type}, "occurred_at": {"S": ts(e.at_utc)},
        "received_at": {"S": ts(now)}, "body": {"S": ev.to_wire(e)},
        "ttl": {"N": str((expires - EPOCH) // timedelta(seconds=1))},
        "state": {"S": "applied"} if applied else {"S": "applying"},
    }
    if not applied:
        item["applying_at"] = {"S": ts(now)}
    if e.contact_id is not None:
        item["contact_id"] = {"S": e.contact_id}
    return item


def is_applying(record: dict[str, Any]) -> bool:
    """Whether an existing raw record is an earlier attempt's, its effects never confirmed."""
    return record.get("state", {}).get("S") == "applying" and "applying_at" in record


def put_raw(now: datetime, e: Event) -> str | StoreError:
    """`new`, `unfinished` (found still applying: apply again) or `duplicate`."""
    try:
        DDB.put_item(
            TableName=TABLE, Item=raw_item(e, now),
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": "pk"},
            ReturnValuesOnConditionCheckFailure="ALL_OLD", ReturnConsumedCapacity="TOTAL")
        return "new"
    except ClientError as err:
        if not is_conditional(err):
            return store_error(err)
        return "unfinished" if is_applying(err.response.get("Item") or {}) else "duplicate"
    except BotoCoreError as err:
        return store_error(err)


def insert_raw(batch: Batch, valid: list[tuple[int, Event]], unrecorded: set[int]) -> tuple[list, int]:
    to_record = [(i, e) for i, e in valid if i not in unrecorded]
    results = run_all(lambda pair: put_raw(batch.now, pair[1]), to_record)
    fresh = [(i, e) for i, e in valid if i in unrecorded]
    duplicates, resend_from = 0, {}
    for (i, e), r in zip(to_record, results):
        if isinstance(r, StoreError):
            batch.fail(i, r)
            if r.retryable:
                at = (e.at_utc, i)
                resend_from[e.account_id] = min(resend_from.get(e.account_id, at), at)
        elif r == "duplicate":
            duplicates += 1
        else:
            fresh.append((i, e))
    kept = []
    for i, e in fresh:
        start = resend_from.get(e.account_id)
        if start is not None and (e.at_utc, i) > start:
            batch.fail(i, HELD_BACK)
        else:
            kept.append((i, e))
    return sorted(kept, key=lambda p: p[0]), duplicates


# --- 2. Idempotent effects and firsts -------------------------------------------------------


def apply_effects(batch: Batch, fresh: list[tuple[int, Event]]) -> None:
    """Accounts concurrently, each account's events in `occurred_at` order; an effect that
    failed for retry holds back the account's later events."""
    groups: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    for i, e in fresh:
        groups[e.account_id].append((i, e))

    def one_account(events: list[tuple[int, Event]]) -> None:
        held = False
        for i, e in sorted(events, key=lambda p: (p[1].at_utc, p[0])):
            if held:
                batch.fail(i, HELD_BACK)
                continue
            try:
                apply_effect(e)
            except (ClientError, BotoCoreError, StoreError) as err:
                se = store_error(err)
                batch.fail(i, se)
                held = se.retryable

    run_all(one_account, [groups[a] for a in sorted(groups)])


def apply_effect(e: Event) -> None:
    if e.type == "account_upserted":
        upsert_account(e)
        index_account(e.account_id, e.at_utc)
    elif e.type == "nps_response":
        answer: dict[str, Any] = {"score": {"N": str(e.properties["score"])},
                                  "at": {"S": ts(e.at_utc)}}
        if "comment" in e.properties:
            answer["comment"] = {"S": e.properties["comment"][:280]}
        DDB.update_item(
            TableName=TABLE, Key=key(f"ACCT#{e.account_id}", "SAT"),
            UpdateExpression="SET #e = if_not_exists(#e, :v)",
            ExpressionAttributeNames={"#e": f"n_{e.event_id}"},
            ExpressionAttributeValues={":v": {"M": answer}}, ReturnConsumedCapacity="TOTAL")


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def number(x: float | int) -> str:
    """A DynamoDB number as Rust's `Display` prints it (`30000`, `12000.5`, no exponent)."""
    if isinstance(x, int):
        return str(x)
    text = format(Decimal(repr(x)), "f")
    return text[:-2] if text.endswith(".0") else text


def profile_attribute(p: dict[str, Any]) -> dict[str, Any]:
    """The `profile` map as serde_dynamo writes an `AccountProfile`."""
    m: dict[str, Any] = {}
    for k, v in p.items():
        if isinstance(v, dict):
            m[k] = {"M": {ck: {"S": cv} for ck, cv in v.items()}}
        elif isinstance(v, str):
            m[k] = {"S": v}
        else:
            m[k] = {"N": number(v)}
    return {"M": m}


def upsert_account(e: Event) -> None:
    """Last writer wins by `occurred_at`; a stale write changes nothing."""
    try:
        DDB.update_item(
            TableName=TABLE, Key=key(f"ACCT#{e.account_id}", "PROFILE"),
            UpdateExpression="SET #clock = :at, #profile = :p",
            ConditionExpression="attribute_not_exists(#clock) OR #clock < :at",
            ExpressionAttributeNames={"#clock": "profile_at", "#profile": "profile"},
            ExpressionAttributeValues={":at": {"S": ts(e.at_utc)},
                                       ":p": profile_attribute(e.properties)},
            ReturnValues="UPDATED_OLD", ReturnConsumedCapacity="TOTAL")
    except ClientError as err:
        if not is_conditional(err):
            raise


def index_account(account_id: str, seen_at: datetime) -> None:
    shard = fnv1a(account_id.encode()) % max(SHARDS, 1)
    DDB.update_item(
        TableName=TABLE, Key=key(f"ACCOUNTS#{shard}", f"ACCT#{account_id}"),
        UpdateExpression="SET account_id = :id, first_seen = if_not_exists(first_seen, :t)",
        ExpressionAttributeValues={":id": {"S": account_id}, ":t": {"S": ts(seen_at)}},
        ReturnConsumedCapacity="TOTAL")


def first_key(e: Event) -> str | None:
    if e.type == "feature_used":
        return f"feature_{e.properties['feature']}"
    return {"report_created": "report", "login": "login"}.get(e.type)


def record_firsts(batch: Batch, fresh: list[tuple[int, Event]]) -> None:
    """One `if_not_exists` write per account per batch, none for firsts this container wrote."""
    per_account: dict[str, tuple[dict[str, datetime], list[int]]] = {}
    for i, e in fresh:
        k = first_key(e)
        if i in batch.failed or k is None or (e.account_id, k) in KNOWN_FIRSTS:
            continue
        keys, events = per_account.setdefault(e.account_id, ({}, []))
        keys[k] = min(keys.get(k, e.at_utc), e.at_utc)
        events.append(i)

    def write(account: str) -> None:
        keys, events = per_account[account]
        ordered = sorted(keys.items())
        try:
            DDB.update_item(
                TableName=TABLE, Key=key(f"ACCT#{account}", "FIRSTS"),
                UpdateExpression="SET " + ", ".join(
                    f"#k{n} = if_not_exists(#k{n}, :v{n})" for n in range(len(ordered))),
                ExpressionAttributeNames={f"#k{n}": f"first_{k}" for n, (k, _) in enumerate(ordered)},
                ExpressionAttributeValues={f":v{n}": {"S": ts(t)} for n, (_, t) in enumerate(ordered)},
                ReturnValues="UPDATED_OLD", ReturnConsumedCapacity="TOTAL")
        except (ClientError, BotoCoreError) as err:
            for i in events:
                batch.fail(i, store_error(err))
            return
        with LOCK:
            if len(KNOWN_FIRSTS) > CACHE_LIMIT:
                KNOWN_FIRSTS.clear()
            KNOWN_FIRSTS.update((account, k) for k in keys)

    run_all(write, sorted(per_account))


# --- 3. Rollups -----------------------------------------------------------------------------


def remember_zone(account: str, zone: str | None, now: datetime) -> None:
    """Learned zones are trusted for ZONE_TTL, so a zone changed through another container is
    picked up within it (the caller holds LOCK)."""
    if len(KNOWN_ZONES) > CACHE_LIMIT:
        KNOWN_ZONES.clear()
    KNOWN_ZONES[account] = (zone, now)


def account_zones(accounts: set[str], batch_zone: dict[str, str], now: datetime) -> dict:
    """Each account's zone name (UTC without a profile), or the StoreError of its read."""
    zones: dict[str, Any] = {}
    to_read = []
    with LOCK:
        for a in accounts:
            known = KNOWN_ZONES.get(a)
            if a in batch_zone:
                remember_zone(a, batch_zone[a], now)
                zones[a] = batch_zone[a]
            elif known is not None and now - known[1] < ZONE_TTL:
                zones[a] = known[0] or "UTC"
            else:
                to_read.append(a)

    def read(account: str) -> Any:
        try:
            item = DDB.get_item(TableName=TABLE, Key=key(f"ACCT#{account}", "PROFILE"),
                                ReturnConsumedCapacity="TOTAL").get("Item") or {}
        except (ClientError, BotoCoreError) as err:
            return store_error(err)
        zone = item.get("profile", {}).get("M", {}).get("timezone", {}).get("S")
        with LOCK:
            remember_zone(account, zone, now)
        return zone or "UTC"

    zones.update(zip(to_read, run_all(read, to_read)))
    return zones


def count_rollups(batch: Batch, fresh: list[tuple[int, Event]], batch_zone: dict,
                  unrecorded: set[int]) -> set[int]:
    """Groups usage per (account, local day) and counts each chunk in one transaction;
    returns the indexes another request counted meanwhile (late duplicates)."""
    usage = [(i, e) for i, e in fresh if i not in batch.failed and e.type in USAGE]
    zones = account_zones({e.account_id for _, e in usage}, batch_zone, batch.now)
    days: dict[tuple[str, date], list[tuple[int, Event]]] = defaultdict(list)
    for i, e in usage:
        zone = zones[e.account_id]
        if isinstance(zone, StoreError):
            batch.fail(i, zone)
        else:
            days[(e.account_id, e.at_utc.astimezone(ev.zone(zone)).date())].append((i, e))
    chunks = [(a, d, evs[n:n + COUNT_LIMIT])
              for (a, d), evs in sorted(days.items()) for n in range(0, len(evs), COUNT_LIMIT)]

    def count(chunk: tuple[str, date, list[tuple[int, Event]]]) -> list[int]:
        account, day, events = chunk
        try:
            gone = count_chunk(account, day, [e for i, e in events if i not in unrecorded],
                               [e for i, e in events if i in unrecorded], batch.now)
        except (ClientError, BotoCoreError, StoreError) as err:
            for i, _ in events:
                batch.fail(i, store_error(err))
            return []
        return [i for i, e in events if e.event_id in gone]

    return {i for late in run_all(count, chunks) for i in late}


def rollup_update(events: list[Event], with_contacts: bool) -> dict[str, Any]:
    """The `ADD` of a chunk's usage to its `DAY#` item (contacts only while not full)."""
    c: dict[str, int] = defaultdict(int)
    features: dict[str, int] = defaultdict(int)
    contacts: set[str] = set()
    for e in events:
        c["events"] += 1
        if e.type == "login":
            c["logins"] += 1
        elif e.type == "report_created":
            c["reports"] += 1
        elif e.type == "feature_used":
            features[e.properties["feature"]] += 1
        elif e.type == "nps_response":
            c["nps_sum"] += e.properties["score"]
            c["nps_count"] += 1
        if e.contact_id and len(contacts) < MAX_DAY_CONTACTS:
            contacts.add(e.contact_id)
    order = ("events", "logins", "reports", "tickets_opened", "tickets_closed", "nps_sum", "nps_count")
    adds = [f"{n} :{n}" for n in order if c[n] > 0]
    values: dict[str, Any] = {f":{n}": {"N": str(c[n])} for n in order if c[n] > 0}
    names = {}
    for n, (f, count) in enumerate(sorted(features.items())):
        adds.append(f"#f{n} :f{n}")
        names[f"#f{n}"] = f"f_{f}"
        values[f":f{n}"] = {"N": str(count)}
    update: dict[str, Any] = {}
    if with_contacts and contacts:
        adds.append("contacts :contacts")
        values[":contacts"] = {"SS": sorted(contacts)}
        values[":max_contacts"] = {"N": str(MAX_DAY_CONTACTS)}
        update["ConditionExpression"] = "attribute_not_exists(contacts) OR size(contacts) < :max_contacts"
    update.update(UpdateExpression="ADD " + ", ".join(adds), ExpressionAttributeValues=values)
    if names:
        update["ExpressionAttributeNames"] = names
    return update


def count_chunk(account: str, day: date, confirm: list[Event], create: list[Event],
                now: datetime) -> set[str]:
    """Adds the chunk's usage, marks its recorded events applied and creates the count-only
    events' records, atomically; drops (and returns) events counted before, turns a record
    found still `applying` into one to confirm, and counts without contacts once the day is
    full."""
    pk, gone = f"ACCT#{account}", set()
    with_contacts = (account, day) not in FULL_DAYS
    while confirm or create:
        items = [{"Update": {"TableName": TABLE, "Key": key(pk, f"DAY#{day.isoformat()}"),
                             **rollup_update(confirm + create, with_contacts)}}]
        items += [{"Update": {
            "TableName": TABLE, "Key": key(pk, f"EVT#{e.event_id}"),
            "UpdateExpression": "SET #st = :applied REMOVE applying_at",
            "ConditionExpression": "#st = :applying", "ExpressionAttributeNames": {"#st": "state"},
            "ExpressionAttributeValues": {":applied": {"S": "applied"}, ":applying": {"S": "applying"}},
        }} for e in confirm]
        items += [{"Put": {
            "TableName": TABLE, "Item": raw_item(e, now, applied=True),
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }} for e in create]
        try:
            DDB.transact_write_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")
            return gone
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = err.response.get("CancellationReasons", [])
        codes = [r.get("Code") for r in reasons]
        per_write = reasons[1:]
        applied = {e.event_id for e, r in zip(confirm, per_write)
                   if r.get("Code") == "ConditionalCheckFailed"}
        unfinished = set()
        for e, r in zip(create, per_write[len(confirm):]):
            if r.get("Code") != "ConditionalCheckFailed":
                continue
            old = r.get("Item")
            if old is None:
                old = DDB.get_item(TableName=TABLE, Key=key(pk, f"EVT#{e.event_id}"),
                                   ConsistentRead=True, ReturnConsumedCapacity="TOTAL").get("Item")
            if old is None:  # gone again since (its TTL expired meanwhile): a resend creates it
                raise StoreError("the table is unavailable: an event's record changed while it "
                                 "was counted", True)
            if is_applying(old):
                unfinished.add(e.event_id)
            else:
                applied.add(e.event_id)
        if applied or unfinished:
            gone |= applied
            confirm = [e for e in confirm if e.event_id not in applied]
            confirm += [e for e in create if e.event_id in unfinished]
            create = [e for e in create if e.event_id not in applied | unfinished]
        elif codes and codes[0] == "ConditionalCheckFailed" and with_contacts:
            with_contacts = False
            with LOCK:
                FULL_DAYS.add((account, day))
        else:
            raise cancelled(codes)
    return gone


def cancelled(codes: list[str | None]) -> StoreError:
    real = [c for c in codes if c and c != "None"]
    if any(c in ("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded") for c in real):
        return StoreError("the table is throttling requests; retry later", True)
    return StoreError(f"store error: transaction cancelled ({', '.join(real)})", False)


def mark_applied(e: Event) -> None:
    """Confirms an event without usage; a failure leaves it accepted (a resend repeats only
    idempotent effects)."""
    try:
        DDB.update_item(
            TableName=TABLE, Key=key(f"ACCT#{e.account_id}", f"EVT#{e.event_id}"),
            UpdateExpression="SET #st = :applied REMOVE applying_at",
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={"#st": "state", "#pk": "pk"},
            ExpressionAttributeValues={":applied": {"S": "applied"}}, ReturnConsumedCapacity="TOTAL")
    except (ClientError, BotoCoreError):
        pass

