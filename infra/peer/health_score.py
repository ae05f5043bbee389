"""The health score in Python: a port of the Rust `health::score` and of the model it reads.

Pure (no I/O, no clock). Floating-point steps are done in the same order as the Rust code
(explicit left-to-right sums, Rust's round-half-away-from-zero), so the same model and inputs
give the same score, band and drivers. The model is data: `parse_model` takes the JSON the
Rust side stores under `SYS/MODEL#<version>`; `DEFAULT_MODEL` is the built-in "default-1"
used while no model is selected, as in Rust.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from peer_events import zone

HISTORY_DAYS = 60
MAX_KEY_FEATURES = 64
NEUTRAL = 50.0
FACTORS = {
    "contract": ["tenure", "renewals", "days_to_renewal", "plan"],
    "usage": ["login_days", "login_trend", "active_contacts", "feature_breadth",
              "feature_depth", "reports", "onboarding"],
    "satisfaction": ["nps", "nps_trend", "open_tickets", "recent_tickets"],
    "risk": ["login_decline", "key_features_unused", "admin_changed", "ticket_spike",
             "nps_detractor"],
}
FAMILY_OF = {f: fam for fam, fs in FACTORS.items() for f in fs}
BLENDED = ("contract", "usage", "satisfaction")
MODEL_KEYS = {"version", "weights", "factors", "penalties", "bands", "thresholds", "targets",
              "severity_weights", "plan_scores", "key_features", "onboarding_steps", "tiers",
              "playbooks"}
DEFAULT_MODEL: dict[str, Any] = {
    "version": "default-1",
    "weights": {"contract": 0.2, "usage": 0.5, "satisfaction": 0.3},
    "factors": {
        "contract": {"tenure": 0.3, "renewals": 0.3, "days_to_renewal": 0.2, "plan": 0.2},
        "usage": {"login_days": 0.25, "login_trend": 0.15, "active_contacts": 0.15,
                  "feature_breadth": 0.15, "feature_depth": 0.1, "reports": 0.1,
                  "onboarding": 0.1},
        "satisfaction": {"nps": 0.5, "nps_trend": 0.1, "open_tickets": 0.2,
                         "recent_tickets": 0.2},
    },
    "penalties": {"login_decline": 10, "key_features_unused": 8, "admin_changed": 10,
                  "ticket_spike": 8, "nps_detractor": 10},
    "bands": {"red_below": 40, "green_from": 70},
    "thresholds": {"trend_days": 14, "login_decline_pct": 30, "usage_days": 30,
                   "key_feature_unused_days": 14, "admin_changed_days": 30,
                   "recent_ticket_days": 30, "ticket_spike_days": 7, "ticket_spike_count": 3,
                   "nps_max_age_days": 365, "detractor_max": 6, "active_uses": 3,
                   "active_days": 30, "pre_renewal_days": 90, "provisional_days": 14,
                   "onboarding_days": 90},
    "targets": {"tenure_days": 365, "renewals": 2, "login_days": 10, "active_contacts": 5,
                "feature_uses": 40, "reports": 4, "open_ticket_load": 8,
                "recent_ticket_load": 12},
    "severity_weights": {"low": 1, "medium": 2, "high": 4, "urgent": 8},
    "plan_scores": {"enterprise": 100, "premium": 80, "standard": 60, "starter": 40, "free": 20},
    "key_features": {"default": ["report_builder", "dashboard", "integration", "workflow"],
                     "plans": {}},
    "onboarding_steps": {"default": ["invite_users", "import_data", "first_report"], "plans": {}},
    "tiers": {"high_touch_from_arr": 50000, "low_touch_from_arr": 10000, "plans": {}},
    "playbooks": {},
}


class ModelError(ValueError):
    """A stored model the peer cannot use (the Rust side refuses it too)."""


def parse_model(text: str | dict[str, Any]) -> dict[str, Any]:
    """A model from its JSON: every key required, none unknown (a typo must not fall back to
    a default); the Rust numbers that are f64 become floats so drivers serialise alike.
    The numeric rules (shares summing to 1 and so on) are checked when a model is stored."""
    m = json.loads(text) if isinstance(text, str) else json.loads(json.dumps(text))
    if not isinstance(m, dict) or set(m) != MODEL_KEYS:
        got = sorted(m) if isinstance(m, dict) else type(m).__name__
        raise ModelError(f"expected the keys {sorted(MODEL_KEYS)}, got {got}")
    for group in ("weights", "penalties", "bands", "targets", "severity_weights", "plan_scores"):
        m[group] = {k: float(v) for k, v in m[group].items()}
    m["factors"] = {fam: {k: float(v) for k, v in fs.items()} for fam, fs in m["factors"].items()}
    m["thresholds"]["login_decline_pct"] = float(m["thresholds"]["login_decline_pct"])
    for k in ("high_touch_from_arr", "low_touch_from_arr"):
        m["tiers"][k] = float(m["tiers"][k])
    return m


def lookup(table: dict[str, Any], plan: str) -> Any:
    """A plan's entry: exact first, else ignoring ASCII case and surrounding spaces."""
    plan = plan.strip()
    if plan in table:
        return table[plan]
    return next((v for k, v in table.items() if k.strip().lower() == plan.lower()), None)


def plan_list(lists: dict[str, Any], plan: str) -> list[str]:
    """The plan's list, or the default one (an empty list for a plan is its list)."""
    found = lookup(lists["plans"], plan)
    return found if found is not None else lists["default"]


def rust_round(x: float) -> float:
    """`f64::round`: halves away from zero (Python's `round` rounds halves to even)."""
    a = abs(x)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return math.copysign(float(r), x)


def round_to(x: float, places: int) -> float:
    f = 10.0 ** places
    r = rust_round(x * f) / f
    return 0.0 if r == 0 else r


def fsum_seq(values: Any) -> float:
    """A left-to-right sum (Python 3.12's `sum` compensates, Rust's does not)."""
    total = 0.0
    for v in values:
        total += v
    return total


def ratio_score(value: float, target: float) -> float:
    return 100.0 if target <= 0 else min(max(100.0 * value / target, 0.0), 100.0)


def load_score(load: float, limit: float) -> float:
    if limit <= 0:
        return 0.0 if load > 0 else 100.0
    return min(max(100.0 * (1.0 - load / limit), 0.0), 100.0)


@dataclass
class Day:
    day: date
    logins: int = 0
    reports: int = 0
    features: dict[str, int] = field(default_factory=dict)
    contacts: set[str] = field(default_factory=set)


@dataclass
class Inputs:
    """What one account's score depends on (the Rust `HealthInputs`)."""

    profile: dict[str, Any]
    first_seen: datetime
    usage: list[Day]
    steps_done: set[str]
    first_report: bool
    open_tickets: list[tuple[str, datetime]]
    recent_tickets: list[tuple[str, datetime]]
    nps: list[tuple[int, datetime]]
    admin_changed_at: datetime | None
    now: datetime


@dataclass
class UsageFacts:
    login_mask: int = 0
    logins_last: int = 0
    logins_prev: int = 0
    reports: int = 0
    key_uses: int = 0
    active_uses: int = 0
    used_usage: int = 0
    used_unused: int = 0
    contacts: set[str] = field(default_factory=set)


def usage_facts(model: dict, usage: list[Day], keys: list[str], today: date) -> UsageFacts:
    t, u = model["thresholds"], UsageFacts()
    trend = t["trend_days"]
    for day in usage:
        age = (today - day.day).days
        if not 1 <= age <= HISTORY_DAYS:
            continue
        if age <= trend:
            u.logins_last += day.logins
            if day.logins > 0:
                u.login_mask |= 1 << age
        elif age <= 2 * trend:
            u.logins_prev += day.logins
        in_usage = age <= t["usage_days"]
        if in_usage:
            u.reports += day.reports
            u.contacts |= day.contacts
        in_active, in_unused = age <= t["active_days"], age <= t["key_feature_unused_days"]
        if not (in_usage or in_active or in_unused):
            continue
        for i, k in enumerate(keys[:MAX_KEY_FEATURES]):
            n = day.features.get(k, 0)
            if n == 0:
                continue
            if in_usage:
                u.key_uses += n
                u.used_usage |= 1 << i
            if in_active:
                u.active_uses += n
            if in_unused:
                u.used_unused |= 1 << i
    return u


def tier_of(model: dict, p: dict[str, Any]) -> tuple[str, str]:
    if p.get("tier"):
        return p["tier"], "account"
    planned = lookup(model["tiers"]["plans"], p["plan"])
    if planned is not None:
        return planned, "plan"
    arr, tiers = p["arr"], model["tiers"]
    if arr >= tiers["high_touch_from_arr"]:
        return "high_touch", "arr"
    return ("low_touch" if arr >= tiers["low_touch_from_arr"] else "tech_touch"), "arr"


def phase_of(model: dict, p: dict[str, Any], today: date, complete: bool) -> str:
    t = model["thresholds"]
    if (p["renewal_date"] - today).days <= t["pre_renewal_days"]:
        return "pre_renewal"
    if (today - p["contract_start"]).days < t["onboarding_days"] and not complete:
        return "onboarding"
    return "operation"


def latest_two(nps: list[tuple[int, datetime]], now: datetime, max_age: timedelta) -> tuple:
    first = second = None
    for r in nps:
        if r[1] > now or now - r[1] > max_age:
            continue
        if first is not None and r[1] <= first[1]:
            if second is None or r[1] > second[1]:
                second = r
        else:
            first, second = r, first
    return first, second


def score(model: dict, i: Inputs) -> dict[str, Any]:
    """The score of one account: weighted sub-scores with missing weight redistributed, minus
    fired risk penalties (scaled to stop at 0), rounded; see the Rust `health` docs."""
    p, t, g, now = i.profile, model["thresholds"], model["targets"], i.now
    tz = zone(p["timezone"])
    today = now.astimezone(tz).date()
    since_seen = (today - i.first_seen.astimezone(tz).date()).days

    def observed(window: int) -> int:
        return min(max(since_seen, 0), window)

    def prorated(target: float, window: int) -> float:
        return target * float(observed(window)) / float(window)

    keys = plan_list(model["key_features"], p["plan"])
    key_count = min(len(keys), MAX_KEY_FEATURES)
    u = usage_facts(model, i.usage, keys, today)
    steps = plan_list(model["onboarding_steps"], p["plan"])
    steps_done = sum(1 for s in steps if s in i.steps_done or (i.first_report and s == "first_report"))
    phase = phase_of(model, p, today, steps_done >= len(steps))
    tier, tier_source = tier_of(model, p)
    tenure = (today - p["contract_start"]).days
    to_renewal = (p["renewal_date"] - today).days

    measures: list[tuple[str, float | None, float | None, float | None]] = []

    def known(f: str, value: float, versus: float | None, sub: float) -> None:
        measures.append((f, float(value), versus, min(max(sub, 0.0), 100.0)))

    def missing(f: str, value: float | None, versus: float | None) -> None:
        measures.append((f, value, versus, None))

    known("tenure", tenure, g["tenure_days"], ratio_score(float(tenure), g["tenure_days"]))
    known("renewals", p["renewals"], g["renewals"], ratio_score(float(p["renewals"]), g["renewals"]))
    pre = float(t["pre_renewal_days"])
    known("days_to_renewal", to_renewal, pre, ratio_score(float(to_renewal), pre))
    plan_score = lookup(model["plan_scores"], p["plan"])
    if plan_score is not None:
        known("plan", plan_score, None, plan_score)
    else:
        missing("plan", None, None)

    def usage_measure(f: str, value: float, target: float, window: int) -> None:
        versus = round_to(prorated(target, window), 2)
        if observed(window) == 0:
            missing(f, float(value), versus)
        else:
            known(f, value, versus, ratio_score(float(value), prorated(target, window)))

    usage_measure("login_days", bin(u.login_mask >> 1).count("1"), g["login_days"], t["trend_days"])
    trend_known = since_seen >= 2 * t["trend_days"] and (u.logins_last + u.logins_prev) > 0
    last, prev = float(u.logins_last), float(u.logins_prev)
    if trend_known:
        known("login_trend", last, prev, 100.0 if prev == 0.0 else 100.0 * last / prev)
    else:
        missing("login_trend", last, prev)
    usage_measure("active_contacts", len(u.contacts), g["active_contacts"], t["usage_days"])
    breadth = float(bin(u.used_usage).count("1"))
    if observed(t["usage_days"]) == 0 or key_count == 0:
        missing("feature_breadth", breadth, float(key_count))
    else:
        known("feature_breadth", breadth, float(key_count), 100.0 * breadth / float(key_count))
    usage_measure("feature_depth", u.key_uses, g["feature_uses"], t["usage_days"])
    usage_measure("reports", u.reports, g["reports"], t["usage_days"])
    done, total = float(steps_done), float(len(steps))
    if not steps or (steps_done == 0 and phase != "onboarding"):
        missing("onboarding", done, total)
    else:
        known("onboarding", done, total, 100.0 * done / total)

    latest, previous = latest_two(i.nps, now, timedelta(days=t["nps_max_age_days"]))
    nps_value = (lambda r: float(min(r[0], 10)))
    if latest is not None:
        known("nps", nps_value(latest), None, 10.0 * nps_value(latest))
    else:
        missing("nps", None, None)
    if latest is not None and previous is not None:
        known("nps_trend", nps_value(latest), nps_value(previous),
              100.0 + 10.0 * (nps_value(latest) - nps_value(previous)))
    else:
        missing("nps_trend", nps_value(latest) if latest else None, None)
    recent_from = now - timedelta(days=t["recent_ticket_days"])
    recent = [k for k in i.recent_tickets if k[1] > recent_from]
    sev = model["severity_weights"]
    open_load = fsum_seq(sev[k[0]] for k in i.open_tickets)
    recent_load = fsum_seq(sev[k[0]] for k in recent)
    silent = not i.open_tickets and not recent
    for f, load, limit in (("open_tickets", open_load, g["open_ticket_load"]),
                           ("recent_tickets", recent_load, g["recent_ticket_load"])):
        if silent:
            missing(f, 0.0, limit)
        else:
            known(f, load, limit, load_score(load, limit))

    signals = risk_signals(model, i, u, trend_known, last, prev, key_count, since_seen, latest, recent)
    return blend(model, i, measures, signals, today, tier, tier_source, phase, u)


def risk_signals(model: dict, i: Inputs, u: UsageFacts, trend_known: bool, last: float,
                 prev: float, key_count: int, since_seen: int, latest: Any,
                 recent: list) -> list[tuple[str, float | None, float | None, bool, float]]:
    """(factor, value, versus, missing, share of the penalty) per risk signal, in order."""
    t, now, out = model["thresholds"], i.now, []
    pct = round_to(100.0 * (prev - last) / prev, 1) if prev > 0.0 else None
    if pct is not None and trend_known:
        out.append(("login_decline", pct, t["login_decline_pct"], False,
                    1.0 if pct >= t["login_decline_pct"] else 0.0))
    else:
        out.append(("login_decline", None, t["login_decline_pct"], True, 0.0))
    unused = key_count - bin(u.used_unused).count("1")
    unused_known = since_seen >= t["key_feature_unused_days"] and key_count > 0
    out.append(("key_features_unused", float(unused) if unused_known else None,
                float(key_count), not unused_known,
                float(unused) / float(key_count) if unused_known and unused > 0 else 0.0))
    age = max(now - i.admin_changed_at, timedelta(0)) if i.admin_changed_at else None
    out.append(("admin_changed", float(age.days) if age is not None else None,
                float(t["admin_changed_days"]), False,
                1.0 if age is not None and age < timedelta(days=t["admin_changed_days"]) else 0.0))
    spike_from = now - timedelta(days=t["ticket_spike_days"])
    spike = sum(1 for k in recent if k[1] > spike_from)
    out.append(("ticket_spike", float(spike), float(t["ticket_spike_count"]), False,
                1.0 if spike >= t["ticket_spike_count"] else 0.0))
    if latest is not None:
        out.append(("nps_detractor", float(min(latest[0], 10)), float(t["detractor_max"]), False,
                    1.0 if min(latest[0], 10) <= t["detractor_max"] else 0.0))
    else:
        out.append(("nps_detractor", None, float(t["detractor_max"]), True, 0.0))
    return out


def blend(model: dict, i: Inputs, measures: list, signals: list, today: date, tier: str,
          tier_source: str, phase: str, u: UsageFacts) -> dict[str, Any]:
    """Weights after redistribution, the blend, the penalties and the stored score shape."""
    weights, factors = model["weights"], model["factors"]
    shares = [fsum_seq(factors[fam][m[0]] for m in measures
                       if FAMILY_OF[m[0]] == fam and m[3] is not None) for fam in BLENDED]
    known_families = fsum_seq(weights[fam] for fam, s in zip(BLENDED, shares) if s > 0.0)
    nothing_known = known_families <= 0.0
    drivers, total = [], 0.0
    for f, value, versus, sub in measures:
        fam = FAMILY_OF[f]
        fw, w, share = weights[fam], factors[fam][f], shares[BLENDED.index(fam)]
        if nothing_known:
            weight = fw * w
        elif sub is not None and share > 0.0:
            weight = fw / known_families * w / share
        else:
            weight = 0.0
        exact = weight * (sub if sub is not None else (NEUTRAL if nothing_known else 0.0))
        total += exact
        drivers.append([f, value, versus, None if sub is None else round_to(sub, 1),
                        round_to(weight, 4), round_to(exact, 2), sub is None, False])
    penalties = model["penalties"]
    nominal = fsum_seq(s[4] * penalties[s[0]] for s in signals)
    scale = total / nominal if nominal > total and nominal > 0.0 else 1.0
    penalty_total = 0.0
    for f, value, versus, is_missing, share in signals:
        applied = share * penalties[f] * scale
        penalty_total += applied
        drivers.append([f, value, versus, None, 0.0, round_to(-applied, 2), is_missing, share > 0.0])
    points = int(rust_round(min(max(total - penalty_total, 0.0), 100.0)))
    bands = model["bands"]
    band = "red" if points < bands["red_below"] else "green" if points >= bands["green_from"] else "yellow"
    t = model["thresholds"]
    return {
        "model": model["version"], "at": i.now, "day": today, "score": points, "band": band,
        "tier": tier, "tier_source": tier_source, "phase": phase,
        "active": u.active_uses >= t["active_uses"],
        "provisional": i.now - i.first_seen < timedelta(days=t["provisional_days"]),
        "drivers": drivers,
    }


def detail_json(s: dict[str, Any]) -> str:
    """The snapshot's `detail`: the Rust `StoredScore` as compact JSON, fields in its order."""
    at, micros = s["at"].strftime("%Y-%m-%dT%H:%M:%S"), s["at"].microsecond
    if micros:
        at += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    stored = {**s, "at": at + "Z", "day": s["day"].isoformat()}
    return json.dumps(stored, ensure_ascii=False, separators=(",", ":"))
