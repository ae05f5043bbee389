#!/usr/bin/env python3
"""Generates the demo's synthetic portfolio (portfolio.jsonl), deterministically (fixed seed).

Twelve B2B accounts in Tokyo and New York over November 2026: healthy ones, one declining,
onboarding laggards, deadlines (trial ends, renewals, onboarding tasks), a customer reply that
pauses automation, an unsubscribe, HTML in a name, and two invalid events to show rejection.
Run: python3 infra/demo/generate.py > infra/demo/portfolio.jsonl
"""
import json
import random
from datetime import datetime, timedelta, timezone

random.seed(20261101)
TZ = {"Asia/Tokyo": timezone(timedelta(hours=9)), "America/New_York": timezone(timedelta(hours=-5))}
FEATURES = ["report_builder", "dashboard", "integration", "workflow"]
out = []
seq = 0


def ev(account, typ, t, contact=None, props=None):
    global seq
    seq += 1
    e = {"event_id": f"demo-{seq:05d}", "account_id": account}
    if contact:
        e["contact_id"] = contact
    e["type"] = typ
    e["occurred_at"] = t.isoformat()
    if props is not None:
        e["properties"] = props
    out.append(e)


ACCOUNTS = [
    # id, name, plan, industry, tier, tz, locale, start, renewal, profile
    ("acme", "Acme Manufacturing", "premium", "manufacturing", "high_touch", "Asia/Tokyo", "ja", "2026-11-02", "2027-11-01", "healthy"),
    ("sakura", "さくら物流", "standard", "logistics", "low_touch", "Asia/Tokyo", "ja", "2026-11-05", "2027-11-04", "laggard"),
    ("fuji", "Fuji <b>Foods</b> & Co", "standard", "food", "tech_touch", "Asia/Tokyo", "ja", "2026-10-01", "2026-12-15", "declining"),
    ("kobe", "Kobe Steel Works", "premium", "manufacturing", "low_touch", "Asia/Tokyo", "ja", "2026-11-09", "2027-11-08", "healthy"),
    ("umi", "海の家オンライン", "basic", "retail", "tech_touch", "Asia/Tokyo", "ja", "2026-11-12", "2027-11-11", "laggard"),
    ("nagoya", "Nagoya Clinics", "standard", "healthcare", "tech_touch", "Asia/Tokyo", "en", "2026-09-01", "2026-12-05", "healthy"),
    ("globex", "Globex Corporation", "premium", "software", "high_touch", "America/New_York", "en", "2026-11-02", "2027-11-01", "healthy"),
    ("initech", "Initech", "standard", "finance", "low_touch", "America/New_York", "en", "2026-11-03", "2027-11-02", "replied"),
    ("hooli", "Hooli", "basic", "software", "tech_touch", "America/New_York", "en", "2026-10-15", "2026-12-20", "declining"),
    ("umbrella", "Umbrella Health", "premium", "healthcare", "high_touch", "America/New_York", "en", "2026-11-10", "2027-11-09", "laggard"),
    ("stark", "Stark Retail", "standard", "retail", "tech_touch", "America/New_York", "en", "2026-11-16", "2027-11-15", "healthy"),
    ("wayne", "Wayne Logistics", "standard", "logistics", "low_touch", "America/New_York", "en", "2026-08-01", "2026-12-01", "unsubscribed"),
]

for (aid, name, plan, industry, tier, tzname, locale, start, renewal, profile) in ACCOUNTS:
    tz = TZ[tzname]
    d0 = datetime.fromisoformat(start).replace(hour=9, tzinfo=tz)
    ev(aid, "account_upserted", d0, props={
        "name": name, "plan": plan, "industry": industry, "tier": tier,
        "csm": {"name": "Sato Hanako" if locale == "ja" else "Jordan Lee",
                "email": f"csm-{aid}@vendor.example"},
        "timezone": tzname, "locale": locale, "contract_start": start, "renewal_date": renewal,
        "renewals": 0 if profile != "declining" else 1, "arr": random.choice([6000, 12000, 24000, 60000])})
    contacts = [("admin", "admin"), ("exec", "executive"), ("u1", "user"), ("u2", "user")]
    for cid, role in contacts:
        ev(aid, "contact_upserted", d0 + timedelta(minutes=5), contact=f"{aid}-{cid}", props={
            "email": f"{cid}@{aid}.example", "name": f"{name.split()[0]} {role.title()}",
            "role": role, "locale": locale})
    # Usage over the month.
    days = 30
    for day in range(days):
        t = d0 + timedelta(days=day)
        if t.month != 11 and t.day > 30:
            break
        if profile == "healthy":
            p_login = 0.9
        elif profile == "declining":
            p_login = max(0.05, 0.8 - day * 0.04)
        elif profile == "laggard":
            p_login = 0.15
        else:
            p_login = 0.5
        for cid, _ in contacts:
            if random.random() < p_login:
                lt = t + timedelta(minutes=random.randint(0, 480))
                ev(aid, "login", lt, contact=f"{aid}-{cid}")
                if random.random() < p_login * 0.6:
                    ev(aid, "feature_used", lt + timedelta(minutes=7), contact=f"{aid}-{cid}",
                       props={"feature": random.choice(FEATURES)})
        if day == 1:
            ev(aid, "setup_step_completed", t + timedelta(hours=2), contact=f"{aid}-admin", props={"step": "invite_users"})
        if day == 4 and profile != "laggard":
            ev(aid, "setup_step_completed", t + timedelta(hours=3), contact=f"{aid}-admin", props={"step": "import_data"})
        if day == 6 and profile in ("healthy", "replied"):
            ev(aid, "report_created", t + timedelta(hours=4), contact=f"{aid}-u1")
    # Deadlines: an onboarding task due ten days in, and the renewal if it falls in the window.
    ev(aid, "deadline_set", d0 + timedelta(hours=1), contact=f"{aid}-admin", props={
        "deadline_id": "import-data", "due_at": (d0 + timedelta(days=10, hours=9)).isoformat(),
        "title": "データ取り込みの期限" if locale == "ja" else "Import your data",
        "kind": "onboarding_task", "link": f"https://app.example/{aid}/import"})
    if profile != "laggard":
        ev(aid, "deadline_completed", d0 + timedelta(days=4, hours=3), contact=f"{aid}-admin",
           props={"deadline_id": "import-data"})
    if profile == "declining":
        for i in range(3):
            ev(aid, "support_ticket_opened", d0 + timedelta(days=12 + i, hours=2), contact=f"{aid}-u1",
               props={"ticket_id": f"T-{aid}-{i}", "severity": "high"})
        ev(aid, "nps_response", d0 + timedelta(days=14), contact=f"{aid}-exec", props={"score": 3, "comment": "Hard to use"})
    if profile == "healthy":
        ev(aid, "nps_response", d0 + timedelta(days=14), contact=f"{aid}-exec", props={"score": 9})
    if profile == "replied":
        ev(aid, "customer_replied", d0 + timedelta(days=8), contact=f"{aid}-admin")
        ev(aid, "automation_resumed", d0 + timedelta(days=15))
    if profile == "unsubscribed":
        ev(aid, "unsubscribed", d0 + timedelta(days=95), contact=f"{aid}-u1")

# A renewal deadline that triggers three stages in the window.
ev("nagoya", "deadline_set", datetime(2026, 11, 20, 10, tzinfo=TZ["Asia/Tokyo"]), contact="nagoya-admin", props={
    "deadline_id": "renewal-2026", "due_at": "2026-12-05T18:00:00+09:00", "title": "Renewal decision",
    "kind": "contract_renewal", "link": "https://app.example/nagoya/renewal"})
ev("globex", "admin_changed", datetime(2026, 11, 18, 11, tzinfo=TZ["America/New_York"]), contact="globex-u2",
   props={"previous_contact_id": "globex-admin"})
# Two invalid events: the demo shows that they are rejected with a reason and nothing else is lost.
out.append({"event_id": "demo-bad-1", "account_id": "acme", "type": "teleported",
            "occurred_at": "2026-11-20T10:00:00+09:00"})
out.append({"event_id": "demo-bad-2", "account_id": "acme", "contact_id": "acme-u1", "type": "login",
            "occurred_at": "2026-11-20T10:00:00"})

out.sort(key=lambda e: (e["occurred_at"][:19], e["event_id"]))
for e in out:
    print(json.dumps(e, ensure_ascii=False, separators=(",", ":")))
