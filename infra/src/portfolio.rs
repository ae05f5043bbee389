//! The demo's synthetic portfolio, generated from a seed: B2B accounts across industries,
//! plans, tiers and locales (mostly Japanese customers in Tokyo, some in New York), each with an
//! admin, an executive and users, living one of the stories customer success deals with:
//! the fast adopter, the slow starter nudged through onboarding, the stalled one handed to a
//! person, the account whose logins decline and whose admin changes, the one who replies, the
//! one whose mail bounces, the one who churns, the healthy premium account near renewal, and
//! deadlines that are met, moved, cancelled or missed.
//!
//! Same seed, same events, byte for byte (a portable PCG generator; no wall clock). Besides
//! the events, each contact has an engagement profile (how likely they open and click, whether
//! their address bounces) that the simulation turns into SES feedback.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;
use serde_json::{Value, json};

use crate::engagement::{Behaviour, Engagement};

/// The story an account lives through the simulated window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Persona {
    /// New customer: every onboarding step in the first week, heavy use.
    FastAdopter,
    /// New customer: slow first weeks, catches up after the program's nudges.
    SlowStarter,
    /// New customer: never gets going; the program hands them to their CSM.
    Stalled,
    /// Existing customer using the product steadily.
    Steady,
    /// Existing customer: logins fall away, tickets pile up, the admin changes.
    Declining,
    /// Replies to an email: automation pauses for them until a person resumes it.
    Replier,
    /// Steady, but the admin's address bounces.
    Bouncer,
    /// Usage dies away, a detractor NPS, then churn.
    Churner,
    /// Premium, heavy use, renewal inside the window: an upsell offer.
    RenewalPremium,
}

impl Persona {
    pub fn label(self) -> &'static str {
        match self {
            Persona::FastAdopter => "fast adopter",
            Persona::SlowStarter => "slow starter",
            Persona::Stalled => "stalled onboarding",
            Persona::Steady => "steady",
            Persona::Declining => "declining, admin changes",
            Persona::Replier => "replies to an email",
            Persona::Bouncer => "admin's mail bounces",
            Persona::Churner => "churns",
            Persona::RenewalPremium => "premium near renewal",
        }
    }

    fn is_new(self) -> bool {
        matches!(
            self,
            Persona::FastAdopter | Persona::SlowStarter | Persona::Stalled
        )
    }
}

/// How many accounts of each persona make up 60 (scaled for other sizes).
const MIX: [(Persona, usize); 9] = [
    (Persona::FastAdopter, 10),
    (Persona::SlowStarter, 8),
    (Persona::Stalled, 4),
    (Persona::Steady, 15),
    (Persona::Declining, 6),
    (Persona::Replier, 4),
    (Persona::Bouncer, 3),
    (Persona::Churner, 3),
    (Persona::RenewalPremium, 7),
];

const INDUSTRIES: [(&str, &str, &str); 8] = [
    ("manufacturing", "製作所", "Manufacturing"),
    ("retail", "商店", "Retail"),
    ("it", "システムズ", "Systems"),
    ("healthcare", "メディカル", "Health"),
    ("logistics", "物流", "Logistics"),
    ("finance", "ファイナンス", "Capital"),
    ("education", "ラーニング", "Learning"),
    ("food", "フーズ", "Foods"),
];
const JA_STEMS: [&str; 20] = [
    "さくら",
    "富士",
    "みなと",
    "青葉",
    "北斗",
    "東海",
    "若葉",
    "朝日",
    "大和",
    "ひかり",
    "明星",
    "海風",
    "瑞穂",
    "山吹",
    "白樺",
    "紅葉",
    "松風",
    "花園",
    "旭",
    "銀河",
];
const EN_STEMS: [&str; 12] = [
    "Northwind",
    "Harbor",
    "Summit",
    "Bluebird",
    "Keystone",
    "Evergreen",
    "Lakeside",
    "Pioneer",
    "Redwood",
    "Granite",
    "Beacon",
    "Meridian",
];
const JA_FAMILY: [&str; 12] = [
    "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田",
];
const JA_GIVEN: [&str; 8] = ["花子", "太郎", "美咲", "健", "陽菜", "翔", "結衣", "大輔"];
const EN_FAMILY: [&str; 8] = [
    "Smith", "Johnson", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Moore",
];
const EN_GIVEN: [&str; 8] = [
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Mia", "Lucas",
];
const FEATURES: [&str; 4] = ["report_builder", "dashboard", "integration", "workflow"];
const CSMS: [(&str, &str); 3] = [
    ("佐藤 花子", "csm-sato@vendor.example"),
    ("山田 健", "csm-yamada@vendor.example"),
    ("Jordan Lee", "csm-lee@vendor.example"),
];

/// One account of the portfolio, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct AccountCard {
    pub account_id: String,
    pub name: String,
    pub persona: Persona,
    pub industry: String,
    pub plan: String,
    pub timezone: String,
    pub locale: String,
    pub contract_start: NaiveDate,
    pub renewal_date: NaiveDate,
    pub arr: u32,
}

/// A generated portfolio: events in time order, engagement per contact address, and the
/// accounts' cards.
#[derive(Debug, Clone)]
pub struct Portfolio {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub events: Vec<Value>,
    pub engagement: Engagement,
    pub accounts: Vec<AccountCard>,
}

impl Portfolio {
    /// The events as JSON lines (the `nudge simulate --events` format).
    pub fn jsonl(&self) -> String {
        let mut s = String::new();
        for e in &self.events {
            s.push_str(&e.to_string());
            s.push('\n');
        }
        s
    }
}

struct Builder {
    rng: Pcg64Mcg,
    events: Vec<(DateTime<Utc>, Value)>,
    seq: usize,
}

impl Builder {
    fn ev(
        &mut self,
        account: &str,
        ty: &str,
        at: DateTime<Tz>,
        contact: Option<&str>,
        props: Option<Value>,
    ) {
        self.seq += 1;
        let mut e = json!({"event_id": format!("demo-{:06}", self.seq), "account_id": account});
        if let Some(c) = contact {
            e["contact_id"] = json!(c);
        }
        e["type"] = json!(ty);
        e["occurred_at"] = json!(at.to_rfc3339());
        if let Some(p) = props {
            e["properties"] = p;
        }
        self.events.push((at.with_timezone(&Utc), e));
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    /// A time on `day` in local working hours.
    fn work_time(&mut self, day: NaiveDate, tz: Tz) -> DateTime<Tz> {
        let minute = self.rng.random_range(9 * 60..18 * 60);
        local(tz, day, minute / 60, minute % 60)
    }
}

fn local(tz: Tz, day: NaiveDate, h: u32, m: u32) -> DateTime<Tz> {
    // Working hours never fall in a DST gap in these zones (changes happen at night).
    tz.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap_or_default())
        .earliest()
        .unwrap_or_else(|| tz.from_utc_datetime(&day.and_hms_opt(h, m, 0).unwrap_or_default()))
}

/// Generates `accounts` accounts living `days` days from `from` (plus three weeks of history
/// for existing customers).
pub fn generate(seed: u64, accounts: usize, from: DateTime<Utc>, days: u32) -> Portfolio {
    let mut b = Builder {
        rng: Pcg64Mcg::seed_from_u64(seed),
        events: Vec::new(),
        seq: 0,
    };
    let to = from + Duration::days(i64::from(days));
    let first_day = from.date_naive();
    let mut engagement = Engagement::new(seed);
    let mut cards = Vec::new();

    // Personas in proportion to MIX, interleaved so that any prefix is varied.
    let total: usize = MIX.iter().map(|(_, n)| n).sum();
    let mut personas: Vec<Persona> = Vec::new();
    for (p, n) in MIX {
        let count = (n * accounts).div_ceil(total);
        personas.extend(std::iter::repeat_n(p, count));
    }
    personas.truncate(accounts.max(1));
    let mut order: Vec<(u64, Persona)> = personas
        .into_iter()
        .map(|p| (b.rng.random::<u64>(), p))
        .collect();
    order.sort();

    for (n, (_, persona)) in order.into_iter().enumerate() {
        let japanese = b.chance(0.7);
        let (tz, locale): (Tz, &str) = if japanese {
            (chrono_tz::Asia::Tokyo, "ja")
        } else if b.chance(0.8) {
            (chrono_tz::America::New_York, "en")
        } else {
            (chrono_tz::Asia::Tokyo, "en")
        };
        let &(industry, ja_suffix, en_suffix) = b.pick(&INDUSTRIES);
        let mut name = if japanese {
            format!("{}{}", b.pick(&JA_STEMS), ja_suffix)
        } else {
            format!("{} {}", b.pick(&EN_STEMS), en_suffix)
        };
        if n == 7 {
            // A name with markup: every page and message must show it as text.
            name = format!("{name} <b>&</b> Co");
        }
        let account_id = format!("acct-{:02}", n + 1);
        let plan = match persona {
            Persona::RenewalPremium => "premium",
            Persona::Churner | Persona::Stalled => "starter",
            _ => *b.pick(&["starter", "standard", "standard", "premium"]),
        };
        let arr: u32 = match plan {
            "premium" => *b.pick(&[48_000, 60_000, 96_000, 120_000]),
            "standard" => *b.pick(&[12_000, 18_000, 24_000, 36_000]),
            _ => *b.pick(&[3_600, 6_000, 9_600]),
        };
        let contract_start = if persona.is_new() {
            first_day + Duration::days(b.rng.random_range(0..14))
        } else {
            first_day - Duration::days(b.rng.random_range(120..700))
        };
        let renewal_date = match persona {
            Persona::RenewalPremium => first_day + Duration::days(b.rng.random_range(20..55)),
            _ if persona.is_new() => contract_start + Duration::days(365),
            _ => {
                // The next anniversary of the contract start after the window.
                let mut r = contract_start;
                while r <= first_day + Duration::days(i64::from(days)) {
                    r += Duration::days(365);
                }
                r
            }
        };
        let renewals = if persona.is_new() {
            0
        } else {
            (first_day - contract_start).num_days() / 365
        };
        let &(csm_name, csm_email) = if japanese {
            b.pick(&CSMS[..2])
        } else {
            &CSMS[2]
        };
        // New customers arrive on their contract's first morning; existing ones three weeks
        // before the window, with their history (enough for the score not to be provisional).
        let arrival_day = if persona.is_new() {
            contract_start
        } else {
            first_day - Duration::days(21)
        };
        let arrival = local(tz, arrival_day, 8, 30);
        b.ev(
            &account_id,
            "account_upserted",
            arrival,
            None,
            Some(json!({
                "name": name, "plan": plan, "industry": industry,
                "csm": {"name": csm_name, "email": csm_email},
                "timezone": tz.name(), "locale": locale,
                "contract_start": contract_start.to_string(),
                "renewal_date": renewal_date.to_string(),
                "renewals": renewals, "arr": arr,
            })),
        );

        // People: an admin, an executive and two to four users.
        let users = b.rng.random_range(2..=3);
        let mut people: Vec<(String, &str)> = vec![
            (format!("{account_id}-admin"), "admin"),
            (format!("{account_id}-exec"), "executive"),
        ];
        people.extend((1..=users).map(|i| (format!("{account_id}-u{i}"), "user")));
        for (contact, role) in &people {
            let person = if japanese {
                format!("{} {}", b.pick(&JA_FAMILY), b.pick(&JA_GIVEN))
            } else {
                format!("{} {}", b.pick(&EN_GIVEN), b.pick(&EN_FAMILY))
            };
            let email = format!(
                "{}@{account_id}.example",
                contact.rsplit('-').next().unwrap_or("x")
            );
            b.ev(
                &account_id,
                "contact_upserted",
                arrival + Duration::minutes(5),
                Some(contact),
                Some(json!({"email": email, "name": person, "role": role, "locale": locale})),
            );
            let mut behaviour = Behaviour {
                open: b.rng.random_range(0.35..0.8),
                click: b.rng.random_range(0.15..0.5),
                bounces: false,
            };
            match persona {
                Persona::Stalled | Persona::Churner => behaviour.open *= 0.3,
                Persona::Bouncer if *role == "admin" => behaviour.bounces = true,
                _ => {}
            }
            engagement.insert(&email, behaviour);
        }

        usage(
            &mut b,
            &account_id,
            persona,
            tz,
            arrival_day,
            first_day,
            days,
            &people,
        );
        story(
            &mut b,
            &account_id,
            persona,
            tz,
            contract_start,
            first_day,
            &people,
            locale,
        );
        cards.push(AccountCard {
            account_id,
            name,
            persona,
            industry: industry.to_string(),
            plan: plan.to_string(),
            timezone: tz.name().to_string(),
            locale: locale.to_string(),
            contract_start,
            renewal_date,
            arr,
        });
    }

    // Two events a real sender gets wrong: the demo shows each rejected with its reason and
    // nothing else lost.
    let bad_at = local(
        chrono_tz::Asia::Tokyo,
        first_day + Duration::days(10),
        10,
        0,
    );
    b.events.push((
        bad_at.with_timezone(&Utc),
        json!({"event_id": "demo-bad-1", "account_id": "acct-01", "type": "teleported",
            "occurred_at": bad_at.to_rfc3339()}),
    ));
    b.events.push((
        bad_at.with_timezone(&Utc),
        json!({"event_id": "demo-bad-2", "account_id": "acct-01", "contact_id": "acct-01-u1",
            "type": "login", "occurred_at": "2026-11-11T10:00:00"}),
    ));

    // Events after the window are not part of it.
    b.events.retain(|(at, _)| *at < to);
    b.events
        .sort_by(|(a, x), (c, y)| (a, x["event_id"].as_str()).cmp(&(c, y["event_id"].as_str())));
    Portfolio {
        from,
        to,
        events: b.events.into_iter().map(|(_, e)| e).collect(),
        engagement,
        accounts: cards,
    }
}

/// How likely a person is to use the product on a working day `d` days into the window
/// (`d` < 0 is history), by persona and role.
fn activity(persona: Persona, d: i64, since_start: i64, role: &str) -> f64 {
    let base = match role {
        "admin" => 0.8,
        "executive" => 0.25,
        _ => 0.6,
    };
    let factor = match persona {
        Persona::FastAdopter => 1.0,
        Persona::SlowStarter => {
            if since_start < 12 {
                0.15
            } else {
                0.75
            }
        }
        Persona::Stalled => 0.08,
        Persona::Steady | Persona::Bouncer | Persona::Replier => 0.85,
        Persona::RenewalPremium => 1.0,
        Persona::Declining => {
            if d < 0 {
                0.85
            } else {
                (0.8 - d as f64 * 0.03).max(0.05)
            }
        }
        Persona::Churner => {
            if d < 0 {
                0.5
            } else {
                (0.4 - d as f64 * 0.02).max(0.0)
            }
        }
    };
    base * factor
}

#[allow(clippy::too_many_arguments)]
fn usage(
    b: &mut Builder,
    account: &str,
    persona: Persona,
    tz: Tz,
    arrival_day: NaiveDate,
    first_day: NaiveDate,
    days: u32,
    people: &[(String, &str)],
) {
    let last = first_day + Duration::days(i64::from(days));
    let mut day = arrival_day;
    while day < last {
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        let d = (day - first_day).num_days();
        let since_start = (day - arrival_day).num_days();
        for (contact, role) in people {
            let p = activity(persona, d, since_start, role) * if weekend { 0.1 } else { 1.0 };
            if !b.chance(p) {
                continue;
            }
            let at = b.work_time(day, tz);
            b.ev(account, "login", at, Some(contact), None);
            let uses = if persona == Persona::RenewalPremium {
                3
            } else {
                1
            };
            for k in 0..uses {
                if b.chance(0.7) {
                    let feature = *b.pick(&FEATURES);
                    b.ev(
                        account,
                        "feature_used",
                        at + Duration::minutes(5 + 10 * k),
                        Some(contact),
                        Some(json!({"feature": feature})),
                    );
                }
            }
            if *role == "user" && b.chance(0.08) {
                b.ev(
                    account,
                    "report_created",
                    at + Duration::minutes(40),
                    Some(contact),
                    None,
                );
            }
        }
        day += Duration::days(1);
    }
}

/// The persona's own events: onboarding steps, tickets, NPS, replies, churn, deadlines.
#[allow(clippy::too_many_arguments)]
fn story(
    b: &mut Builder,
    account: &str,
    persona: Persona,
    tz: Tz,
    start: NaiveDate,
    first_day: NaiveDate,
    people: &[(String, &str)],
    locale: &str,
) {
    let admin = people[0].0.clone();
    let exec = people[1].0.clone();
    let user = people[2].0.clone();
    let day = |d: i64| first_day + Duration::days(d);
    let ja = locale == "ja";

    // Onboarding steps (new customers), days after the contract start.
    let steps: &[(i64, &str)] = match persona {
        Persona::FastAdopter => &[(1, "invite_users"), (2, "import_data"), (4, "first_report")],
        Persona::SlowStarter => &[
            (9, "invite_users"),
            (16, "import_data"),
            (24, "first_report"),
        ],
        Persona::Stalled => &[(6, "invite_users")],
        _ => &[],
    };
    for (d, step) in steps {
        let at = b.work_time(start + Duration::days(*d), tz);
        b.ev(
            account,
            "setup_step_completed",
            at,
            Some(&admin),
            Some(json!({"step": step})),
        );
    }

    let nps = |b: &mut Builder, d: i64, score: u32, comment: Option<&str>| {
        let at = b.work_time(day(d), tz);
        let mut props = json!({"score": score});
        if let Some(c) = comment {
            props["comment"] = json!(c);
        }
        b.ev(account, "nps_response", at, Some(&exec), Some(props));
    };
    match persona {
        Persona::FastAdopter | Persona::RenewalPremium => nps(b, 18, 9, None),
        Persona::Steady => nps(b, 20, 8, None),
        Persona::Declining => {
            for i in 0..4 {
                let at = b.work_time(day(14 + i), tz);
                let severity = if i == 0 { "urgent" } else { "high" };
                b.ev(
                    account,
                    "support_ticket_opened",
                    at,
                    Some(&user),
                    Some(json!({"ticket_id": format!("T-{account}-{i}"), "severity": severity})),
                );
            }
            let comment = if ja {
                "レポートの作り方が分かりにくい"
            } else {
                "Reports are hard to set up"
            };
            nps(b, 19, 4, Some(comment));
            // The admin leaves; a user takes over.
            let at = b.work_time(day(21), tz);
            b.ev(
                account,
                "admin_changed",
                at,
                Some(&user),
                Some(json!({"previous_contact_id": admin})),
            );
        }
        Persona::Replier => {
            let at = b.work_time(day(12), tz);
            b.ev(account, "customer_replied", at, Some(&admin), None);
            let at = b.work_time(day(19), tz);
            b.ev(account, "automation_resumed", at, None, None);
        }
        Persona::Churner => {
            let comment = if ja {
                "使う時間が取れない"
            } else {
                "We never found the time"
            };
            nps(b, 10, 2, Some(comment));
            let at = b.work_time(day(38), tz);
            b.ev(account, "churned", at, None, None);
        }
        _ => {}
    }

    // One user of every fifth account unsubscribes from success emails.
    if account.ends_with('5') {
        let at = b.work_time(day(8), tz);
        b.ev(
            account,
            "unsubscribed",
            at,
            Some(&user),
            Some(json!({"category": "success"})),
        );
    }

    // Deadlines: the admin's data import for new customers; a quarterly review for others,
    // met, moved, cancelled or missed.
    let (deadline_id, title, kind, due_day) = if persona.is_new() {
        let title = if ja {
            "データ取り込みの期限"
        } else {
            "Import your data"
        };
        (
            "import-data",
            title,
            "onboarding_task",
            start + Duration::days(14),
        )
    } else {
        let title = if ja {
            "四半期レビューの資料提出"
        } else {
            "Quarterly review materials"
        };
        (
            "quarterly-review",
            title,
            "review",
            day(b.rng.random_range(10..40)),
        )
    };
    let set_at = local(tz, due_day - Duration::days(10), 10, 0);
    let due = local(tz, due_day, 18, 0);
    b.ev(
        account,
        "deadline_set",
        set_at,
        Some(&admin),
        Some(
            json!({"deadline_id": deadline_id, "due_at": due.to_rfc3339(), "title": title,
            "kind": kind, "link": format!("https://app.example/{account}/{deadline_id}")}),
        ),
    );
    let fate = if persona == Persona::Stalled || persona == Persona::Churner {
        3
    } else {
        b.rng.random_range(0..4)
    };
    match fate {
        0 => {
            // Met two days early.
            let at = b.work_time(due_day - Duration::days(2), tz);
            b.ev(
                account,
                "deadline_completed",
                at,
                Some(&admin),
                Some(json!({"deadline_id": deadline_id})),
            );
        }
        1 => {
            // Moved a week later, then met.
            let at = b.work_time(due_day - Duration::days(4), tz);
            let moved = local(tz, due_day + Duration::days(7), 18, 0);
            b.ev(
                account,
                "deadline_set",
                at,
                Some(&admin),
                Some(
                    json!({"deadline_id": deadline_id, "due_at": moved.to_rfc3339(),
                    "title": title, "kind": kind}),
                ),
            );
            let at = b.work_time(due_day + Duration::days(6), tz);
            b.ev(
                account,
                "deadline_completed",
                at,
                Some(&admin),
                Some(json!({"deadline_id": deadline_id})),
            );
        }
        2 => {
            let at = b.work_time(due_day - Duration::days(5), tz);
            b.ev(
                account,
                "deadline_cancelled",
                at,
                Some(&admin),
                Some(json!({"deadline_id": deadline_id})),
            );
        }
        _ => {} // missed
    }
}

/// Counts of the portfolio by persona, for the summary.
pub fn personas(p: &Portfolio) -> BTreeMap<Persona, usize> {
    let mut m = BTreeMap::new();
    for a in &p.accounts {
        *m.entry(a.persona).or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_portfolio_byte_for_byte() {
        let a = generate(7, 60, from(), 45);
        let b = generate(7, 60, from(), 45);
        assert_eq!(a.jsonl(), b.jsonl());
        assert_ne!(a.jsonl(), generate(8, 60, from(), 45).jsonl());
    }

    #[test]
    fn sixty_accounts_cover_every_persona_and_both_zones() {
        let p = generate(20261101, 60, from(), 45);
        assert_eq!(p.accounts.len(), 60);
        assert_eq!(personas(&p).len(), MIX.len());
        let ja = p.accounts.iter().filter(|a| a.locale == "ja").count();
        assert!((30..55).contains(&ja), "{ja} Japanese accounts");
        assert!(p.accounts.iter().any(|a| a.timezone == "America/New_York"));
        // Events are in time order and inside the window.
        let times: Vec<DateTime<Utc>> = p
            .events
            .iter()
            .filter_map(|e| DateTime::parse_from_rfc3339(e["occurred_at"].as_str()?).ok())
            .map(|t| t.with_timezone(&Utc))
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times.iter().all(|t| *t < p.to));
        for ty in [
            "admin_changed",
            "customer_replied",
            "churned",
            "deadline_cancelled",
            "deadline_completed",
            "nps_response",
            "unsubscribed",
            "setup_step_completed",
        ] {
            assert!(p.events.iter().any(|e| e["type"] == ty), "no {ty}");
        }
    }
}
