//! Test fixtures: the hand-worked accounts of the golden tests, and builders for variants.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::{DayUsage, HealthInputs, HealthScore, NpsResponse, Ticket, local_day, score};
use crate::events::{AccountProfile, Locale, Severity};
use crate::health::model::HealthModel;

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid test time")
}

pub fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, mo, d).expect("valid test date")
}

/// "Now" of every golden account: 12:00 in Tokyo, 04:00 in London, 23:00 the day before in
/// New York.
pub fn golden_now() -> DateTime<Utc> {
    utc(2026, 6, 15, 3, 0)
}

pub fn profile(
    tz: Tz,
    plan: &str,
    arr: f64,
    contract_start: NaiveDate,
    renewal_date: NaiveDate,
    renewals: u32,
) -> AccountProfile {
    AccountProfile {
        name: "Acme".into(),
        plan: plan.into(),
        industry: "manufacturing".into(),
        tier: None,
        csm: None,
        timezone: tz,
        locale: Locale::En,
        contract_start,
        renewal_date,
        renewals,
        arr,
    }
}

pub fn ticket(id: &str, severity: Severity, opened_at: DateTime<Utc>) -> Ticket {
    Ticket {
        id: id.into(),
        severity,
        opened_at,
    }
}

pub fn nps(score: u8, at: DateTime<Utc>) -> NpsResponse {
    NpsResponse {
        score,
        at,
        comment: None,
    }
}

/// Usage by age in local days: 1 = yesterday, relative to `today`.
pub struct History {
    today: NaiveDate,
    days: BTreeMap<NaiveDate, DayUsage>,
}

impl History {
    pub fn new(today: NaiveDate) -> Self {
        History {
            today,
            days: BTreeMap::new(),
        }
    }

    fn at(&mut self, age: i64) -> &mut DayUsage {
        let day = self.today - Duration::days(age);
        self.days.entry(day).or_insert_with(|| DayUsage {
            day,
            ..DayUsage::default()
        })
    }

    pub fn logins(mut self, ages: std::ops::RangeInclusive<i64>, per_day: u64) -> Self {
        for age in ages {
            self.at(age).logins += per_day;
        }
        self
    }

    pub fn feature(mut self, age: i64, name: &str, uses: u64) -> Self {
        *self.at(age).features.entry(name.into()).or_default() += uses;
        self
    }

    pub fn contact(mut self, age: i64, id: &str) -> Self {
        self.at(age).active_contacts.insert(id.into());
        self
    }

    pub fn reports(mut self, age: i64, n: u64) -> Self {
        self.at(age).reports += n;
        self
    }

    pub fn build(self) -> Vec<DayUsage> {
        self.days.into_values().collect()
    }
}

/// Everything an account's score needs, owned; [`Account::inputs`] borrows it.
#[derive(Debug, Clone)]
pub struct Account {
    pub profile: AccountProfile,
    pub first_seen: DateTime<Utc>,
    pub usage: Vec<DayUsage>,
    pub steps: BTreeSet<String>,
    pub first_report: bool,
    pub open: Vec<Ticket>,
    pub recent: Vec<Ticket>,
    pub nps: Vec<NpsResponse>,
    pub admin_changed_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

impl Account {
    pub fn inputs(&self) -> HealthInputs<'_> {
        HealthInputs {
            profile: &self.profile,
            first_seen: self.first_seen,
            usage: &self.usage,
            onboarding_steps_done: &self.steps,
            first_report: self.first_report,
            open_tickets: &self.open,
            recent_tickets: &self.recent,
            nps: &self.nps,
            admin_changed_at: self.admin_changed_at,
            now: self.now,
        }
    }

    pub fn score(&self, model: &HealthModel) -> HealthScore {
        score(model, &self.inputs())
    }

    pub fn today(&self) -> NaiveDate {
        local_day(self.now, self.profile.timezone)
    }

    /// Usage rebuilt from scratch (for variants).
    pub fn history(&self) -> History {
        History::new(self.today())
    }
}

fn steps(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

/// Golden A: a healthy premium account in Tokyo (worked in `golden_a_...` in tests.rs).
pub fn healthy_tokyo() -> Account {
    let now = golden_now();
    let today = date(2026, 6, 15);
    Account {
        profile: profile(
            chrono_tz::Asia::Tokyo,
            "premium",
            60_000.0,
            date(2024, 6, 1),
            date(2027, 6, 1),
            2,
        ),
        first_seen: utc(2026, 1, 1, 0, 0),
        usage: History::new(today)
            .logins(1..=8, 2)
            .logins(15..=24, 2)
            .contact(1, "u1")
            .contact(2, "u2")
            .contact(3, "u3")
            .contact(4, "u4")
            .feature(2, "report_builder", 10)
            .feature(2, "dashboard", 10)
            .feature(2, "integration", 10)
            .reports(3, 2)
            .build(),
        steps: steps(&["invite_users", "import_data"]),
        first_report: true,
        open: vec![ticket("t1", Severity::Low, utc(2026, 6, 10, 0, 0))],
        recent: vec![
            ticket("t1", Severity::Low, utc(2026, 6, 10, 0, 0)),
            ticket("t0", Severity::Medium, utc(2026, 5, 25, 0, 0)),
        ],
        nps: vec![
            nps(9, utc(2026, 5, 20, 0, 0)),
            nps(8, utc(2025, 12, 1, 0, 0)),
        ],
        admin_changed_at: None,
        now,
    }
}

/// Golden B: a standard-ish account in New York, 45 days before renewal, sliding.
pub fn at_risk_new_york() -> Account {
    let now = golden_now();
    // 23:00 EDT on June 14.
    let today = date(2026, 6, 14);
    Account {
        profile: profile(
            chrono_tz::America::New_York,
            "growth",
            20_000.0,
            date(2025, 8, 26),
            date(2026, 7, 29),
            1,
        ),
        first_seen: utc(2025, 9, 1, 0, 0),
        usage: History::new(today)
            .logins(1..=4, 1)
            .logins(15..=24, 2)
            .contact(2, "a")
            .contact(2, "b")
            .feature(3, "report_builder", 5)
            .feature(5, "dashboard", 5)
            .build(),
        steps: steps(&["invite_users", "import_data"]),
        first_report: true,
        open: vec![
            ticket("h", Severity::High, utc(2026, 6, 5, 0, 0)),
            ticket("u", Severity::Urgent, utc(2026, 6, 12, 0, 0)),
        ],
        recent: vec![
            ticket("h", Severity::High, utc(2026, 6, 5, 0, 0)),
            ticket("u", Severity::Urgent, utc(2026, 6, 12, 0, 0)),
            ticket("l1", Severity::Low, utc(2026, 5, 20, 0, 0)),
            ticket("l2", Severity::Low, utc(2026, 5, 25, 0, 0)),
        ],
        nps: vec![
            nps(4, utc(2026, 6, 1, 12, 0)),
            nps(7, utc(2026, 1, 10, 0, 0)),
        ],
        admin_changed_at: None,
        now,
    }
}

/// The model of golden C: the default, with a two-step onboarding for `starter`.
pub fn starter_model() -> HealthModel {
    let mut m = HealthModel::default();
    m.onboarding_steps.plans.insert(
        "starter".into(),
        vec!["invite_users".into(), "import_data".into()],
    );
    m
}

/// Golden C: a week-old starter account in London, onboarding, no NPS and no tickets.
pub fn new_london() -> Account {
    let now = golden_now();
    let today = date(2026, 6, 15);
    Account {
        profile: profile(
            chrono_tz::Europe::London,
            "starter",
            5_000.0,
            date(2026, 4, 3),
            date(2027, 4, 3),
            0,
        ),
        // 02:00 BST on June 8: local day June 8, seven days before today.
        first_seen: utc(2026, 6, 8, 1, 0),
        usage: History::new(today)
            .logins(1..=5, 1)
            .contact(1, "x")
            .contact(2, "y")
            .feature(1, "dashboard", 7)
            .build(),
        steps: steps(&["invite_users"]),
        first_report: false,
        open: vec![],
        recent: vec![],
        nps: vec![],
        admin_changed_at: None,
        now,
    }
}
