"""The ingest v1 contract in Python: request signatures and event validation.

Pure functions (no I/O, no clock: "now" is passed in), ported from the Rust `events` module
so the peer refuses what the Rust ingest refuses, with the same status codes and the same
per-event messages (`field: message`). Only five event types are implemented: `login`,
`feature_used`, `report_created`, `nps_response` and `account_upserted`. Every other type of
the contract is recognised but rejected per event (field `type`), so a batch that uses them
is visibly not comparable instead of silently different.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 500
MAX_SKEW_SECS = 300
FUTURE_SLACK = timedelta(minutes=15)
ID_MAX, SLUG_MAX, TEXT_MAX, COMMENT_MAX, EMAIL_MAX = 128, 64, 256, 2000, 254
YEAR_MIN, YEAR_MAX = 2000, 2100
EXAMPLE_TS = "2026-11-20T09:15:00+09:00"

ALL_TYPES = (
    "account_upserted contact_upserted login feature_used report_created setup_step_completed "
    "admin_changed support_ticket_opened support_ticket_closed nps_response customer_replied "
    "automation_resumed deadline_set deadline_completed deadline_cancelled contract_renewed "
    "churned unsubscribed"
).split()
IMPLEMENTED = ("login", "feature_used", "report_created", "nps_response", "account_upserted")
REQUIRES_CONTACT = {
    "admin_changed", "contact_upserted", "unsubscribed", "login", "feature_used", "report_created"
}


class EventError(Exception):
    """One event refused; rendered `field: message` like the Rust `EventError`."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")


class EnvelopeError(Exception):
    """The whole request refused, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Event:
    """One validated event; `occurred_at` keeps the sender's offset (local days depend on it)."""

    event_id: str
    account_id: str
    contact_id: str | None
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def at_utc(self) -> datetime:
        return self.occurred_at.astimezone(timezone.utc)


# --- Signatures -------------------------------------------------------------------------------


def verify(secrets: list[bytes], header: str | None, body: bytes, now_unix: int) -> str | None:
    """None when one `v1` matches under one secret, else the 401 message (never the MAC).

    Every candidate is compared with every secret whatever matched, with a constant-time
    compare, so the time taken says nothing about which part was right.
    """
    header = (header or "").strip()
    if not header:
        return "missing X-Nudge-Signature header; sign the request (the nudge CLI does it for you)"
    t_text: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        if "=" not in part:
            continue
        k, v = part.split("=", 1)
        k = k.strip()
        if k == "t":
            if t_text is not None:
                return _malformed("more than one t= part")
            t_text = v.strip()
        elif k == "v1":
            candidates.append(v.strip())
    if t_text is None:
        return _malformed("missing t=<unix seconds>")
    if not (t_text and t_text.isascii() and t_text.isdigit() and int(t_text) < 2**63):
        return _malformed("t is not a unix time in seconds")
    if not candidates:
        return _malformed("missing v1=<hex signature>")
    skew = now_unix - int(t_text)
    if abs(skew) > MAX_SKEW_SECS:
        return (
            f"signature timestamp is {skew} seconds away from the server clock; the limit is "
            f"{MAX_SKEW_SECS} seconds (check the sender's clock, or the request is a replay)"
        )
    signed = t_text.encode() + b"." + body
    expected = [hmac.new(s, signed, hashlib.sha256).digest() for s in secrets]
    well_formed, matched = False, False
    for c in candidates:
        if len(c) != 64 or not re.fullmatch(r"[0-9a-fA-F]+", c):
            continue
        given = bytes.fromhex(c)
        well_formed = True
        for e in expected:
            matched |= hmac.compare_digest(e, given)
    if matched:
        return None
    if well_formed:
        return "signature does not match: wrong secret, or the body changed after signing"
    return _malformed("v1 must be 64 hex characters (HMAC-SHA256)")


def _malformed(why: str) -> str:
    return f"malformed X-Nudge-Signature header: {why}; expected t=<unix seconds>,v1=<hex>"


def sign(secret: bytes, unix_secs: int, body: bytes) -> str:
    """The header value for `body` signed at `unix_secs` (what the nudge CLI sends)."""
    tag = hmac.new(secret, f"{unix_secs}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={unix_secs},v1={tag}"


# --- The batch --------------------------------------------------------------------------------

ENVELOPE_HINT = 'expected a JSON object like {"events": [...]}'


def parse_batch(body: bytes, now: datetime) -> list[Event | EventError]:
    """Size first (before any JSON parsing), then the envelope, then each event on its own."""
    if len(body) > MAX_BODY_BYTES:
        raise EnvelopeError(
            413, f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes"
        )
    body = body.removeprefix(b"\xef\xbb\xbf")
    if not body.strip(b" \t\n\r\x0c"):
        raise EnvelopeError(400, f"malformed request: request body is empty; {ENVELOPE_HINT}")
    try:
        root = json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise EnvelopeError(
            400, f"malformed request: body is not valid JSON ({e}); {ENVELOPE_HINT}"
        ) from None
    if not isinstance(root, dict):
        raise EnvelopeError(400, f"malformed request: {ENVELOPE_HINT}, got {kind(root)}")
    if "events" not in root:
        raise EnvelopeError(400, f'malformed request: missing "events"; {ENVELOPE_HINT}')
    events = root["events"]
    if not isinstance(events, list):
        raise EnvelopeError(
            400, f'malformed request: "events" must be an array, got {kind(events)}'
        )
    if len(events) > MAX_EVENTS:
        raise EnvelopeError(
            413, f"batch has {len(events)} events; the limit is {MAX_EVENTS}"
        )
    return [_parse_or_error(v, now) for v in events]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_or_error(value: Any, now: datetime) -> Event | EventError:
    try:
        return parse_event(value, now)
    except EventError as e:
        return e


def kind(v: Any) -> str:
    """The JSON type name used in messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def preview(s: str) -> str:
    """A short, quoted excerpt of user input (never echo 10 KB back)."""
    quoted = json.dumps(s[:40], ensure_ascii=False)
    return quoted + "…" if len(s) > 40 else quoted


def parse_event(value: Any, now: datetime) -> Event:
    """One event, validated in the Rust order: ids, type, contact, time, properties."""
    if not isinstance(value, dict):
        raise EventError("event", f"expected a JSON object, got {kind(value)}")
    top = Fields(value, "")
    event_id = top.req(check_id, "event_id")
    account_id = top.req(check_id, "account_id")
    ty = top.req_str("type")
    if ty not in ALL_TYPES:
        valid = ", ".join(ALL_TYPES)
        raise EventError("type", f"unknown type {preview(ty)}; valid types: {valid}")
    contact_id = top.opt(check_id, "contact_id")
    if contact_id is None and ty in REQUIRES_CONTACT:
        raise EventError("contact_id", f"required for {ty} events")
    occurred_at = top.req(check_timestamp, "occurred_at")
    if occurred_at > now + FUTURE_SLACK:
        received = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        raise EventError(
            "occurred_at",
            f"is in the future (more than 15 minutes after {received}, the time it was received)",
        )
    props = value.get("properties")
    if props is None:
        props = {}
    elif not isinstance(props, dict):
        raise EventError("properties", f"expected an object, got {kind(props)}")
    if ty not in IMPLEMENTED:
        raise EventError(
            "type", f"{ty} is not implemented by the Python peer ({', '.join(IMPLEMENTED)} are)"
        )
    p = Fields(props, "properties.")
    return Event(event_id, account_id, contact_id, ty, occurred_at, _properties(ty, p))


def _properties(ty: str, p: Fields) -> dict[str, Any]:
    """The wire `properties` of a valid event, in the order `Event::to_wire` writes them."""
    if ty == "feature_used":
        return {"feature": p.req(check_slug, "feature")}
    if ty == "nps_response":
        out: dict[str, Any] = {"score": p.req_score("score")}
        comment = p.opt(lambda s: check_multiline(s, COMMENT_MAX), "comment")
        if comment is not None and comment.strip():
            out["comment"] = comment
        return out
    if ty == "account_upserted":
        return _account(p)
    return {}


def _account(p: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.req(lambda s: check_line(s, TEXT_MAX), "name"),
        "plan": p.req(lambda s: check_line(s, TEXT_MAX), "plan"),
        "industry": p.req(lambda s: check_line(s, TEXT_MAX), "industry"),
    }
    tier = p.opt(check_tier, "tier")
    if tier is not None:
        out["tier"] = tier
    csm = p.get("csm")
    if isinstance(csm, dict):
        c = Fields(csm, "properties.csm.")
        out["csm"] = {
            "name": c.req(lambda s: check_line(s, TEXT_MAX), "name"),
            "email": c.req(check_email, "email"),
        }
    elif csm is not None:
        raise p.err("csm", f"expected an object with name and email, got {kind(csm)}")
    out["timezone"] = p.req(check_tz, "timezone")
    out["locale"] = p.req(check_locale, "locale")
    start = p.req(check_date, "contract_start")
    renewal = p.req(check_date, "renewal_date")
    if renewal < start:
        raise p.err("renewal_date", f"{renewal} is before contract_start {start}")
    out["contract_start"], out["renewal_date"] = start.isoformat(), renewal.isoformat()
    out["renewals"] = p.req_u32("renewals")
    out["arr"] = p.req_money("arr")
    return out


class Fields:
    """Typed access to one JSON object; `prefix` makes paths like `properties.csm.email`.
    JSON null counts as absent, so optional fields may be sent as null."""

    def __init__(self, obj: dict[str, Any], prefix: str) -> None:
        self.obj, self.prefix = obj, prefix

    def err(self, key: str, message: str) -> EventError:
        return EventError(f"{self.prefix}{key}", message)

    def get(self, key: str) -> Any:
        return self.obj.get(key)

    def req_value(self, key: str) -> Any:
        v = self.obj.get(key)
        if v is None:
            raise self.err(key, "required")
        return v

    def req_str(self, key: str) -> str:
        v = self.req_value(key)
        if not isinstance(v, str):
            raise self.err(key, f"expected a string, got {kind(v)}")
        return v

    def req(self, check: Any, key: str) -> Any:
        try:
            return check(self.req_str(key))
        except ValueError as e:
            raise self.err(key, str(e)) from None

    def opt(self, check: Any, key: str) -> Any:
        return None if self.obj.get(key) is None else self.req(check, key)

    def req_score(self, key: str) -> int:
        v = self.req_value(key)
        if _is_int(v) and 0 <= v <= 10:
            return int(v)
        got = repr(v) if _is_number(v) else kind(v)
        raise self.err(key, f"expected an integer 0-10, got {got}")

    def req_u32(self, key: str) -> int:
        v = self.req_value(key)
        if _is_int(v) and 0 <= v < 2**32:
            return int(v)
        got = repr(v) if _is_number(v) else kind(v)
        raise self.err(key, f"expected a non-negative integer, got {got}")

    def req_money(self, key: str) -> float | int:
        """A number >= 0 the table can store (0, or 1e-130 up to below 1e126)."""
        v = self.req_value(key)
        if not _is_number(v) or not math.isfinite(float(v)) or v < 0:
            got = repr(v) if _is_number(v) else kind(v)
            raise self.err(key, f"expected a number >= 0, got {got}")
        x = float(v) + 0.0
        if x != 0.0 and not 1e-130 <= x < 1e126:
            raise self.err(key, f"expected 0 or a number from 1e-130 to below 1e126, got {v!r}")
        return float(x)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_len(s: str, limit: int) -> None:
    if len(s) > limit:
        raise ValueError(f"is {len(s)} characters; the limit is {limit}")


def check_id(s: str) -> str:
    if not s:
        raise ValueError("must not be empty")
    _check_len(s, ID_MAX)
    bad = next((c for c in s if not (_ascii_alnum(c) or c in "._:@-")), None)
    if bad is not None:
        raise ValueError(f"contains {bad!r}; allowed are letters, digits and . _ : @ -")
    return s


def _ascii_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def check_slug(s: str) -> str:
    """Feature names become attribute names in the store (`f_<name>`): lower snake case only."""
    if not s:
        raise ValueError("must not be empty")
    _check_len(s, SLUG_MAX)
    bad = next((c for c in s if not (c.isascii() and (c.islower() or c.isdigit() or c == "_"))), None)
    if bad is not None:
        raise ValueError(
            f"contains {bad!r}; use lower snake_case (a-z, 0-9, _), like report_builder"
        )
    return s


def _is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F or c in "\u2028\u2029"


def check_line(s: str, limit: int) -> str:
    """Single-line text ends up in email subjects and headers: no control characters."""
    _check_len(s, limit)
    if not s.strip():
        raise ValueError("must not be empty")
    bad = next((c for c in s if _is_control(c)), None)
    if bad is not None:
        raise ValueError(
            f"contains the control character U+{ord(bad):04X}; line breaks and tabs are not "
            "allowed here"
        )
    return s


def check_multiline(s: str, limit: int) -> str:
    """Comments may hold line breaks; CRLF and CR become LF (browsers post CRLF)."""
    _check_len(s, limit)
    bad = next((c for c in s if _is_control(c) and c not in "\n\t\r"), None)
    if bad is not None:
        raise ValueError(
            f"contains the control character U+{ord(bad):04X}; only line breaks and tabs are "
            "allowed"
        )
    return s.replace("\r\n", "\n").replace("\r", "\n")


def check_email(s: str) -> str:
    """Strict on purpose: addresses go into SES headers."""
    if not s:
        raise ValueError("must not be empty")
    if len(s.encode()) > EMAIL_MAX:
        raise ValueError(f"is {len(s.encode())} bytes; the limit is {EMAIL_MAX}")
    bad = next((c for c in s if c.isspace() or not c.isascii() or _is_control(c)
                or c in '<>,;"()[]\\'), None)
    if bad is not None:
        raise ValueError(f"contains {bad!r}; expected a plain address like name@example.com")
    parts = s.split("@")
    if len(parts) != 2:
        raise ValueError("must contain exactly one @, like name@example.com")
    local, domain = parts
    if not 1 <= len(local) <= 64:
        raise ValueError("the part before @ must be 1-64 characters")
    labels_ok = all(
        label and not label.startswith("-") and not label.endswith("-")
        and all(_ascii_alnum(c) or c == "-" for c in label)
        for label in domain.split(".")
    )
    if "." not in domain or not labels_ok:
        raise ValueError(f"domain {preview(domain)} is not a valid domain like example.com")
    return s


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """An IANA zone by its exact name (cached: profiles repeat a few zones)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", name):
        raise ValueError(name)
    return ZoneInfo(name)


def check_tz(s: str) -> str:
    try:
        zone(s)
    except Exception:
        raise ValueError(f"unknown time zone {preview(s)}; use an IANA name like Asia/Tokyo") from None
    return s


def check_tier(s: str) -> str:
    norm = s.replace("-", "_").lower()
    if norm not in ("high_touch", "low_touch", "tech_touch"):
        raise ValueError(
            f"unknown value {preview(s)}; expected one of high_touch, low_touch, tech_touch"
        )
    return norm


def check_locale(s: str) -> str:
    lang = re.split(r"[-_]", s, maxsplit=1)[0].lower()
    if lang not in ("ja", "en"):
        raise ValueError(f"unknown value {preview(s)}; expected one of ja, en (e.g. ja-JP)")
    return lang


def _check_year(year: int) -> None:
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise ValueError(f"year {year} is outside {YEAR_MIN}-{YEAR_MAX}")


def check_date(s: str) -> date:
    """`YYYY-MM-DD` exactly."""
    bad = f"expected a date YYYY-MM-DD, like 2026-04-01; got {preview(s)}"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s, flags=re.ASCII):
        raise ValueError(bad)
    _check_year(int(s[:4]))
    try:
        return date(int(s[:4]), int(s[5:7]), int(s[8:10]))
    except ValueError:
        raise ValueError(bad) from None


RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    flags=re.ASCII,
)
NAIVE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(T| )\d{1,2}:\d{1,2}(:\d{1,2}(\.\d+)?)?", flags=re.ASCII)


def check_timestamp(s: str) -> datetime:
    """RFC 3339 with an explicit offset: without one a time is ambiguous by up to a day."""
    m = RFC3339.fullmatch(s) if len(s) <= 64 else None
    if m:
        y, mo, d, h, mi, sec, frac, z, sign_, oh, om = m.groups()
        try:
            offset = timedelta(0) if z else (1 if sign_ == "+" else -1) * timedelta(
                hours=int(oh), minutes=int(om))
            tz = timezone(offset)
            micros = int((frac or "0")[:6].ljust(6, "0"))
            dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), micros, tzinfo=tz)
        except ValueError:
            dt = None
        if dt is not None:
            _check_year(dt.year)
            return dt
    if len(s) <= 64 and NAIVE.fullmatch(s):
        raise ValueError(
            f"{preview(s)} has no UTC offset; an offset like +09:00 or Z is required, "
            f"e.g. {EXAMPLE_TS}"
        )
    raise ValueError(
        f"expected an RFC 3339 timestamp with an offset, like {EXAMPLE_TS}; got {preview(s)}"
    )


def wire_time(dt: datetime) -> str:
    """`occurred_at` as `Event::to_wire` writes it: the sender's offset, `Z` for UTC, and
    fractional seconds only when present (3 or 6 digits)."""
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond // 1000:03d}" if dt.microsecond % 1000 == 0 else f".{dt.microsecond:06d}"
    off = dt.utcoffset() or timedelta(0)
    if not off:
        return text + "Z"
    minutes = int(off.total_seconds()) // 60
    sign_, minutes = ("+", minutes) if minutes >= 0 else ("-", -minutes)
    return f"{text}{sign_}{minutes // 60:02d}:{minutes % 60:02d}"


def to_wire(e: Event) -> str:
    """The raw record's `body`: the event in its wire shape, compact JSON with its keys sorted,
    as serde_json's map writes them."""
    out: dict[str, Any] = {"event_id": e.event_id, "account_id": e.account_id}
    if e.contact_id is not None:
        out["contact_id"] = e.contact_id
    out["type"] = e.type
    out["occurred_at"] = wire_time(e.occurred_at)
    out["properties"] = e.properties
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
