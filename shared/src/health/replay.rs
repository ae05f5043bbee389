//! Replaying an account's kept raw events into daily scores: the pure core of
//! `nudge model backtest --from --to`, which measures how well a (draft) model's red band
//! predicted churn by scoring every day of a past period with each model and handing the
//! bands to [`backtest`](super::backtest::backtest).
//!
//! # What a replayed day is
//!
//! For each account-local day `D` of `from..=to`, [`replay_account`] builds the state as of
//! the **end of `D`** (every event that happened before it) and scores it with
//! `now = D + 1 at 00:00 in the account's zone`, the first instant after `D`:
//!
//! - the score's "today" ([`local_day`] of `now`) is `D + 1`, so `D` itself is the newest
//!   complete day of the usage windows (`score.rs` never counts today's partial day), and
//!   `HealthScore::day` is `D + 1`: the day on whose morning the daily run would have made this
//!   score, so replayed bands line up with stored snapshots day for day;
//! - the daily run scores at 03:00 local; it sees the same usage (the three hours of `D + 1`
//!   are "today" and never count) and differs only by events of those three hours in the
//!   instant-based inputs (tickets, NPS, admin change, profile) and three hours of ageing of
//!   their windows. Midnight is chosen because it is exactly "the end of `D`": no event of
//!   `D + 1` leaks into day `D`'s score;
//! - a midnight skipped by a daylight-saving change (`America/Santiago` starts summer time at
//!   24:00) ends the day at the gap's end, the first instant of `D + 1` that exists.
//!
//! Days are in the zone of the latest `account_upserted` applied so far; a profile that
//! changes the zone takes effect from the day it arrives (the events before it keep the days
//! they were given). Days before the first profile are skipped: without a profile there is
//! neither a zone nor a score ([`HealthInputs`] needs one).
//!
//! # The state, event by event
//!
//! Mirrors what ingest keeps (`shared/src/ingest/mod.rs`, `shared/src/store/`), so a
//! replayed score is the one the daily run would have made from the stored state:
//! - **profile**: the latest `account_upserted`; a `contract_renewed` carrying a date moves
//!   `renewal_date` to the later of the two, as `AccountItem::into_record` does in
//!   `shared/src/store/dynamo/profiles.rs` (renewals are not counted there either);
//! - **usage** per local day, in the zone of the profile current when the event happened:
//!   logins, reports, feature uses, and as active contacts the `contact_id` of every event
//!   ingest rolls up (`add_usage` in `shared/src/ingest/mod.rs`: logins, features, reports,
//!   tickets, NPS answers). The health module may not import ingest
//!   (`shared/src/architecture.rs`), hence the copy in `ReplayState::add_usage`. Usage that
//!   happened before the first profile is held back and given its days when the profile (and
//!   so the zone) arrives;
//! - **onboarding**: the steps of `setup_step_completed`, and `first_report` once a report was
//!   created;
//! - **tickets** by `ticket_id`: `support_ticket_opened` opens one (again, if it was closed:
//!   a reopening is new support activity, so `opened_at` becomes the reopening), a second open
//!   of an open ticket only updates its severity; `support_ticket_closed` closes it and, when
//!   it carries a severity, records it as the ticket's final one; a close of a ticket never
//!   seen opened is ignored (its opening is older than the kept events: neither open nor
//!   recent). Open = opened and not closed by `now`; recent = every ticket still in the
//!   longest `recent_ticket_days` of the models (the score filters by its own window);
//! - **NPS** answers, kept for the longest `nps_max_age_days` of the models;
//! - **admin change**: the time of the latest `admin_changed`;
//! - **`first_seen`**: the time of the account's first kept event, of any type.
//!
//! One difference on purpose: ingest rolls usage up by UTC day (step 3 of the batch in
//! `shared/src/ingest/mod.rs`), while a `DayUsage` is a local day of the account (`score.rs`),
//! which is what a replay builds. For an account far from UTC, scores made from the stored
//! rollups can therefore differ from replayed ones by the usage near midnight.
//!
//! Events are replayed in `(occurred_at, event_id)` order whatever order they come in, so a
//! replay is deterministic; an event repeated with the same id and instant counts once (the
//! raw store keeps one copy per id).
//!
//! # Cost
//!
//! `O(n log n)` for the sort of `n` events, then every event is applied once in `O(log k)`
//! (`k`: features or contacts of its day) and every day costs one pruning pass plus one
//! [`score`] per model over at most [`HISTORY_DAYS`] + 1 usage days and the windowed tickets
//! and answers. So a replay is `O(n log n + days x models x window)`: linear in the history,
//! never quadratic. The usage kept is bounded by the history window ([`HISTORY_DAYS`] and a
//! spare day or two) however long the kept history is, and usage older than the first
//! score's window is not even bucketed.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::backtest::{Churn, DailyBand};
use super::model::{HISTORY_DAYS, HealthModel};
use super::score::{DayUsage, HealthInputs, HealthScore, NpsResponse, Ticket, local_day, score};
use crate::events::{AccountProfile, Event, EventPayload};

/// One model's replayed scores of one account, one per replayed day in day order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreSeries {
    /// The model's `version` (also on every score; kept here for a series with no score).
    pub model_version: String,
    /// The score of each day `D` of the period from the first one with a profile on, in day
    /// order; `score.day` is `D + 1` (module documentation).
    pub scores: Vec<HealthScore>,
}

/// Replays one account's events over the local days `from..=to` and scores the end of each
/// day with every model. Returns one [`ScoreSeries`] per model, in the order of `models`.
///
/// `events` are the account's kept raw events, in any order, including those before `from`
/// (they build the state the period starts with). An account without any `account_upserted`
/// gets empty series. See the module documentation for the day, the "now" and the state.
pub fn replay_account(
    models: &[&HealthModel],
    events: &[Event],
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<ScoreSeries> {
    let mut out: Vec<ScoreSeries> = models
        .iter()
        .map(|m| ScoreSeries {
            model_version: m.version.clone(),
            scores: Vec::new(),
        })
        .collect();
    let sorted = sorted_events(events);
    // Until the first profile is applied, days are that profile's days.
    let Some(first_tz) = sorted.iter().find_map(|(_, e)| match &e.payload {
        EventPayload::AccountUpserted(p) => Some(p.timezone),
        _ => None,
    }) else {
        return out;
    };
    let windows = Windows::of(models);
    let mut state = ReplayState {
        // The first score's "today" is `from + 1` and reads usage from `from + 1 -
        // HISTORY_DAYS` on: an event before UTC midnight two days earlier is on an older local
        // day in every zone (offsets are within 14 hours), so its usage is never read. Skipping
        // it keeps a replay of the last weeks of a long kept history cheap.
        usage_from: Utc
            .from_utc_datetime(&(from - Duration::days(HISTORY_DAYS + 2)).and_time(NaiveTime::MIN)),
        ..ReplayState::default()
    };
    let mut next = 0;
    for day in from.iter_days().take_while(|d| *d <= to) {
        let Some(after) = day.succ_opt() else { break };
        // Apply everything before the day's end; a profile may change the zone, and with it
        // the end.
        let mut end = start_of_day(state.tz().unwrap_or(first_tz), after);
        while let Some((at, e)) = sorted.get(next) {
            if *at >= end {
                break;
            }
            state.apply(*at, e);
            next += 1;
            if matches!(e.payload, EventPayload::AccountUpserted(_)) {
                end = start_of_day(state.tz().unwrap_or(first_tz), after);
            }
        }
        let (Some(tz), Some(first_seen)) = (state.tz(), state.first_seen) else {
            continue;
        };
        // A profile that moved the account east may have arrived after its new zone's
        // midnight: the day then ends with it, so no applied event is after "now".
        let now = start_of_day(tz, after).max(state.last_at);
        state.prune(now, &windows);
        let Some(profile) = state.profile.as_ref() else {
            continue;
        };
        let inputs = HealthInputs {
            profile,
            first_seen,
            usage: &state.usage,
            onboarding_steps_done: &state.steps,
            first_report: state.first_report,
            open_tickets: &state.open,
            recent_tickets: &state.recent,
            nps: &state.nps,
            admin_changed_at: state.admin_changed_at,
            now,
        };
        for (model, series) in models.iter().zip(out.iter_mut()) {
            series.scores.push(score(model, &inputs));
        }
    }
    out
}

/// When the account churned: the instant of its first `churned` event.
///
/// The first churn counts whatever follows it: a later `contract_renewed` (a win-back) does
/// not undo that the customer left, and the backtest asks whether red came before that.
/// `backtest()` (`shared/src/health/backtest.rs`) likewise keeps an account's earliest label.
pub fn churn_of(events: &[Event]) -> Option<DateTime<Utc>> {
    events
        .iter()
        .filter(|e| matches!(e.payload, EventPayload::Churned))
        .map(Event::occurred_at_utc)
        .min()
}

/// The churn label of an account for `backtest()`: the local day of [`churn_of`], in the zone
/// of the latest profile at or before the churn (the first profile's if none came before; UTC
/// for an account that never had one, which has no score to judge either).
pub fn churn_label(account: &str, events: &[Event]) -> Option<Churn> {
    let at = churn_of(events)?;
    let mut latest: Option<(DateTime<Utc>, &str, Tz)> = None;
    let mut first: Option<(DateTime<Utc>, &str, Tz)> = None;
    for e in events {
        let EventPayload::AccountUpserted(p) = &e.payload else {
            continue;
        };
        let key = (e.occurred_at_utc(), e.event_id.as_str(), p.timezone);
        if first.is_none_or(|f| (key.0, key.1) < (f.0, f.1)) {
            first = Some(key);
        }
        if key.0 <= at && latest.is_none_or(|l| (key.0, key.1) > (l.0, l.1)) {
            latest = Some(key);
        }
    }
    let tz = latest.or(first).map_or(Tz::UTC, |(_, _, tz)| tz);
    Some(Churn {
        account: account.to_string(),
        day: local_day(at, tz),
    })
}

/// The replayed scores of one account as `backtest()` rows: one per score, on `score.day` (the
/// day a stored snapshot of the same score would carry, module documentation).
pub fn daily_bands(account: &str, scores: &[HealthScore]) -> Vec<DailyBand> {
    scores
        .iter()
        .map(|s| DailyBand {
            account: account.to_string(),
            day: s.day,
            band: s.band,
        })
        .collect()
}

/// The events in replay order, `(occurred_at, event_id)`, each with its UTC instant; exact
/// repeats (same id, same instant) once.
fn sorted_events(events: &[Event]) -> Vec<(DateTime<Utc>, &Event)> {
    let mut sorted: Vec<(DateTime<Utc>, &Event)> =
        events.iter().map(|e| (e.occurred_at_utc(), e)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.event_id.cmp(&b.1.event_id)));
    sorted.dedup_by(|a, b| a.0 == b.0 && a.1.event_id == b.1.event_id);
    sorted
}

/// The first instant of local `day` in `tz`, in UTC.
fn start_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // Midnight falls in a daylight-saving gap: the day starts where the gap ends, which is
        // midnight at the offset in force before the gap. One UTC day earlier is safely before
        // the change (offsets are within 14 hours) and months after the previous one.
        None => {
            let before = tz
                .offset_from_utc_datetime(&(midnight - Duration::days(1)))
                .fix();
            Utc.from_utc_datetime(
                &(midnight - Duration::seconds(i64::from(before.local_minus_utc()))),
            )
        }
    }
}

/// How long the windowed state must be kept: the longest window of any model.
struct Windows {
    recent_tickets: Duration,
    nps: Duration,
}

impl Windows {
    fn of(models: &[&HealthModel]) -> Self {
        let longest = |f: fn(&HealthModel) -> i64| {
            Duration::days(models.iter().map(|m| f(m)).max().unwrap_or(0))
        };
        Windows {
            recent_tickets: longest(|m| m.thresholds.recent_ticket_days),
            nps: longest(|m| m.thresholds.nps_max_age_days),
        }
    }
}

/// The account as of the last applied event (module documentation, "The state").
#[derive(Default)]
struct ReplayState<'e> {
    /// The latest profile, with `renewal_date` moved by `contract_renewed`.
    profile: Option<AccountProfile>,
    /// `renewal_date` of the latest profile as sent, before any renewal moved it.
    upserted_renewal_date: Option<NaiveDate>,
    /// The date of the latest `contract_renewed` that carried one.
    renewed_to: Option<NaiveDate>,
    first_seen: Option<DateTime<Utc>>,
    /// The instant of the last applied event.
    last_at: DateTime<Utc>,
    /// Usage before this instant is never read (see [`replay_account`]).
    usage_from: DateTime<Utc>,
    /// Local days in day order, about `HISTORY_DAYS` of them.
    usage: Vec<DayUsage>,
    /// Usage events before the first profile, waiting for a zone to give them their day.
    pending: Vec<(DateTime<Utc>, &'e Event)>,
    steps: BTreeSet<String>,
    first_report: bool,
    /// Open tickets.
    open: Vec<Ticket>,
    /// Tickets opened (or reopened) within the longest recent window, open or closed.
    recent: Vec<Ticket>,
    nps: Vec<NpsResponse>,
    admin_changed_at: Option<DateTime<Utc>>,
}

impl<'e> ReplayState<'e> {
    fn tz(&self) -> Option<Tz> {
        self.profile.as_ref().map(|p| p.timezone)
    }

    fn apply(&mut self, at: DateTime<Utc>, e: &'e Event) {
        self.first_seen.get_or_insert(at);
        self.last_at = at;
        self.add_usage(at, e);
        match &e.payload {
            EventPayload::AccountUpserted(p) => {
                let first = self.profile.is_none();
                let mut profile = p.clone();
                self.upserted_renewal_date = Some(p.renewal_date);
                if let Some(d) = self.renewed_to {
                    profile.renewal_date = profile.renewal_date.max(d);
                }
                self.profile = Some(profile);
                if first {
                    for (at, e) in std::mem::take(&mut self.pending) {
                        self.add_usage(at, e);
                    }
                }
            }
            EventPayload::ContractRenewed {
                renewal_date: Some(d),
            } => {
                self.renewed_to = Some(*d);
                if let (Some(p), Some(sent)) = (self.profile.as_mut(), self.upserted_renewal_date) {
                    p.renewal_date = sent.max(*d);
                }
            }
            EventPayload::SetupStepCompleted { step } if !self.steps.contains(step) => {
                self.steps.insert(step.clone());
            }
            EventPayload::ReportCreated => self.first_report = true,
            EventPayload::AdminChanged { .. } => self.admin_changed_at = Some(at),
            EventPayload::SupportTicketOpened {
                ticket_id,
                severity,
            } => {
                if let Some(t) = self.open.iter_mut().find(|t| t.id == *ticket_id) {
                    // Already open: only the severity is news.
                    t.severity = *severity;
                    if let Some(r) = self.recent.iter_mut().find(|r| r.id == *ticket_id) {
                        r.severity = *severity;
                    }
                    return;
                }
                let ticket = Ticket {
                    id: ticket_id.clone(),
                    severity: *severity,
                    opened_at: at,
                };
                match self.recent.iter_mut().find(|r| r.id == *ticket_id) {
                    Some(r) => *r = ticket.clone(),
                    None => self.recent.push(ticket.clone()),
                }
                self.open.push(ticket);
            }
            EventPayload::SupportTicketClosed {
                ticket_id,
                severity,
            } => {
                self.open.retain(|t| t.id != *ticket_id);
                if let (Some(r), Some(s)) = (
                    self.recent.iter_mut().find(|r| r.id == *ticket_id),
                    severity,
                ) {
                    r.severity = *s;
                }
            }
            EventPayload::NpsResponse { score, comment } => self.nps.push(NpsResponse {
                score: *score,
                at,
                comment: comment.clone(),
            }),
            _ => {}
        }
    }

    /// Adds a usage event to its local day (held back while there is no zone yet). The events
    /// and the contacts are those of `add_usage` in `shared/src/ingest/mod.rs`.
    fn add_usage(&mut self, at: DateTime<Utc>, e: &'e Event) {
        let is_usage = matches!(
            e.payload,
            EventPayload::Login
                | EventPayload::FeatureUsed { .. }
                | EventPayload::ReportCreated
                | EventPayload::SupportTicketOpened { .. }
                | EventPayload::SupportTicketClosed { .. }
                | EventPayload::NpsResponse { .. }
        );
        if !is_usage || at < self.usage_from {
            return;
        }
        let Some(tz) = self.tz() else {
            self.pending.push((at, e));
            return;
        };
        let day = self.day_mut(local_day(at, tz));
        match &e.payload {
            EventPayload::Login => day.logins += 1,
            EventPayload::ReportCreated => day.reports += 1,
            EventPayload::FeatureUsed { feature } => match day.features.get_mut(feature) {
                Some(n) => *n += 1,
                None => {
                    day.features.insert(feature.clone(), 1);
                }
            },
            _ => {}
        }
        if let Some(c) = &e.contact_id
            && !day.active_contacts.contains(c)
        {
            day.active_contacts.insert(c.clone());
        }
    }

    /// The usage of `day`, created in place. Events come in time order, so the day is nearly
    /// always the last one or a new last one; only a zone change moves a day backwards.
    fn day_mut(&mut self, day: NaiveDate) -> &mut DayUsage {
        let i = match self.usage.last() {
            Some(last) if last.day == day => self.usage.len() - 1,
            Some(last) if last.day > day => {
                match self.usage.binary_search_by(|u| u.day.cmp(&day)) {
                    Ok(i) => i,
                    Err(i) => {
                        self.usage.insert(i, empty_day(day));
                        i
                    }
                }
            }
            _ => {
                // A new newest day: no score from now on has a "today" before it, so days
                // older than its window (one spare for a zone moving west) are never read again.
                let keep_from = day - Duration::days(HISTORY_DAYS + 1);
                let old = self.usage.partition_point(|u| u.day < keep_from);
                self.usage.drain(..old);
                self.usage.push(empty_day(day));
                self.usage.len() - 1
            }
        };
        &mut self.usage[i]
    }

    /// Drops what no score at `now` or later reads: usage outside the history, tickets and
    /// answers older than the longest window of any model.
    fn prune(&mut self, now: DateTime<Utc>, windows: &Windows) {
        if let Some(tz) = self.tz() {
            let keep_from = local_day(now, tz) - Duration::days(HISTORY_DAYS);
            let old = self.usage.partition_point(|u| u.day < keep_from);
            self.usage.drain(..old);
        }
        let recent_from = now - windows.recent_tickets;
        self.recent.retain(|t| t.opened_at > recent_from);
        let nps_from = now - windows.nps;
        self.nps.retain(|r| r.at >= nps_from);
    }
}

fn empty_day(day: NaiveDate) -> DayUsage {
    DayUsage {
        day,
        ..DayUsage::default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, FixedOffset, Weekday};

    use super::*;
    use crate::events::Severity;
    use crate::health::backtest::{DEFAULT_HORIZON_DAYS, backtest};
    use crate::health::model::{Band, Bands, Factor};
    use crate::health::score::fixtures::{date, profile};

    fn at(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).expect("valid test time")
    }

    fn ev(id: &str, when: &str, contact: Option<&str>, payload: EventPayload) -> Event {
        Event {
            event_id: id.into(),
            account_id: "acme".into(),
            contact_id: contact.map(str::to_string),
            occurred_at: at(when),
            payload,
        }
    }

    fn upsert(id: &str, when: &str, p: AccountProfile) -> Event {
        ev(id, when, None, EventPayload::AccountUpserted(p))
    }

    fn login(id: &str, when: &str, contact: &str) -> Event {
        ev(id, when, Some(contact), EventPayload::Login)
    }

    fn feature(id: &str, when: &str, contact: &str, name: &str) -> Event {
        let payload = EventPayload::FeatureUsed {
            feature: name.into(),
        };
        ev(id, when, Some(contact), payload)
    }

    fn values(series: &ScoreSeries, factor: Factor) -> Vec<Option<f64>> {
        series
            .scores
            .iter()
            .map(|s| s.driver(factor).and_then(|d| d.value))
            .collect()
    }

    fn triggered(series: &ScoreSeries, factor: Factor) -> Vec<bool> {
        series
            .scores
            .iter()
            .map(|s| s.driver(factor).is_some_and(|d| d.triggered))
            .collect()
    }

    fn draft_model() -> HealthModel {
        HealthModel {
            version: "draft-2".into(),
            bands: Bands {
                red_below: 60.0,
                green_from: 85.0,
            },
            ..HealthModel::default()
        }
    }

    /// Ten days of a premium account in Tokyo whose profile arrives on March 3 (a login of
    /// March 2 came first).
    fn tokyo_history() -> Vec<Event> {
        let tokyo = profile(
            chrono_tz::Asia::Tokyo,
            "premium",
            60_000.0,
            date(2025, 6, 1),
            date(2027, 6, 1),
            1,
        );
        vec![
            login("e00", "2026-03-02T15:00:00+09:00", "u1"),
            upsert("e01", "2026-03-03T10:00:00+09:00", tokyo),
            login("e02", "2026-03-03T11:00:00+09:00", "u1"),
            feature("e03", "2026-03-04T09:00:00+09:00", "u2", "dashboard"),
            ev(
                "e04",
                "2026-03-04T14:00:00+09:00",
                Some("u1"),
                EventPayload::SupportTicketOpened {
                    ticket_id: "t1".into(),
                    severity: Severity::High,
                },
            ),
            // 23:30 in Tokyo: March 5 there (14:30 UTC).
            login("e05", "2026-03-05T23:30:00+09:00", "u2"),
            // 08:30 on March 6 in Tokyo, sent with a UTC offset: still March 5 in UTC.
            login("e06", "2026-03-05T23:30:00+00:00", "u1"),
            ev(
                "e07",
                "2026-03-06T12:00:00+09:00",
                Some("u3"),
                EventPayload::AdminChanged {
                    previous_contact_id: Some("u1".into()),
                },
            ),
            ev(
                "e08",
                "2026-03-07T11:00:00+09:00",
                Some("u1"),
                EventPayload::SupportTicketClosed {
                    ticket_id: "t1".into(),
                    severity: None,
                },
            ),
            ev(
                "e09",
                "2026-03-08T20:00:00+09:00",
                Some("u2"),
                EventPayload::NpsResponse {
                    score: 3,
                    comment: Some("slow".into()),
                },
            ),
        ]
    }

    fn replay_tokyo(models: &[&HealthModel]) -> Vec<ScoreSeries> {
        replay_account(
            models,
            &tokyo_history(),
            date(2026, 3, 1),
            date(2026, 3, 10),
        )
    }

    #[test]
    fn each_day_from_the_first_profile_on_gets_one_score_made_at_the_next_local_midnight() {
        let model = HealthModel::default();
        let series = replay_tokyo(&[&model]);
        assert_eq!(series.len(), 1);
        let s = &series[0];
        assert_eq!(s.model_version, "default-1");
        // March 1 and 2 come before the profile: skipped. March 3 to 10: eight scores, each
        // the one the daily run of the next day would make (module documentation).
        let days: Vec<NaiveDate> = s.scores.iter().map(|x| x.day).collect();
        let expected: Vec<NaiveDate> = (4..=11).map(|d| date(2026, 3, d)).collect();
        assert_eq!(days, expected);
        // "now" is 00:00 in Tokyo of score.day, 15:00 UTC the day before.
        let first = &s.scores[0];
        assert_eq!(
            first.at,
            at("2026-03-04T00:00:00+09:00").with_timezone(&Utc)
        );
        assert_eq!(first.at, at("2026-03-03T15:00:00Z").with_timezone(&Utc));
        // first_seen is the March 2 login, before the profile: under 14 days, provisional.
        assert!(s.scores.iter().all(|x| x.provisional));
    }

    #[test]
    fn logins_count_on_their_local_day_including_one_at_23_30_and_one_before_the_profile() {
        let model = HealthModel::default();
        let s = &replay_tokyo(&[&model])[0];
        // Login days in the 14 complete days before score.day, for D = March 3 ..= 10:
        // March 2 (before the profile, given its Tokyo day once the zone is known) and 3;
        // March 5 from the 23:30 login on D = March 5 itself; March 6 from the 08:30 login sent
        // as 23:30 UTC on March 5. Bucketed by UTC day, D = March 5 would show 3 days only
        // with both March 5 logins and the March 6 one would never add a fourth.
        let login_days: Vec<Option<f64>> = [2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0]
            .into_iter()
            .map(Some)
            .collect();
        assert_eq!(values(s, Factor::LoginDays), login_days);
        // The feature of March 4 is in the usage window from D = March 4 on.
        let breadth: Vec<Option<f64>> = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
            .into_iter()
            .map(Some)
            .collect();
        assert_eq!(values(s, Factor::FeatureBreadth), breadth);
        // Active contacts: u1 (March 2), u2 from its feature use of March 4. u3 only changed
        // the admin, which is not usage: never active.
        let contacts: Vec<Option<f64>> = [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
            .into_iter()
            .map(Some)
            .collect();
        assert_eq!(values(s, Factor::ActiveContacts), contacts);
    }

    #[test]
    fn a_ticket_is_open_until_the_day_it_closes_then_only_recent() {
        let model = HealthModel::default();
        let s = &replay_tokyo(&[&model])[0];
        // D = March 3: no ticket yet (no support signal: missing). Opened March 4 (high = 4),
        // closed March 7: open in the scores of D = 4, 5, 6; from D = 7 (the daily run of
        // March 8) not open any more, still recent.
        let open: Vec<(Option<f64>, bool)> = s
            .scores
            .iter()
            .map(|x| {
                let d = x.driver(Factor::OpenTickets).expect("driver");
                (d.value, d.missing)
            })
            .collect();
        let mut expected = vec![(Some(0.0), true)];
        expected.extend([(Some(4.0), false); 3]);
        expected.extend([(Some(0.0), false); 4]);
        assert_eq!(open, expected);
        let recent = values(s, Factor::RecentTickets);
        assert_eq!(recent[1..], [Some(4.0); 7]);
    }

    #[test]
    fn the_admin_change_and_the_detractor_answer_fire_from_their_day_on() {
        let model = HealthModel::default();
        let s = &replay_tokyo(&[&model])[0];
        let on_from = |first: usize| (0..8).map(|i| i >= first).collect::<Vec<bool>>();
        // Admin changed on March 6 (index 3), the NPS 3 came on March 8 (index 5).
        assert_eq!(triggered(s, Factor::AdminChanged), on_from(3));
        assert_eq!(triggered(s, Factor::NpsDetractor), on_from(5));
        assert_eq!(values(s, Factor::Nps)[5..], [Some(3.0); 3]);
    }

    #[test]
    fn two_models_give_two_series_over_the_same_days() {
        let (default, draft) = (HealthModel::default(), draft_model());
        let series = replay_tokyo(&[&default, &draft]);
        assert_eq!(series.len(), 2);
        assert_eq!(
            (
                series[0].model_version.as_str(),
                series[1].model_version.as_str()
            ),
            ("default-1", "draft-2")
        );
        for (a, b) in series[0].scores.iter().zip(&series[1].scores) {
            // Same weights, so the same number; only the band cut-offs differ.
            assert_eq!((a.day, a.score), (b.day, b.score));
            assert_eq!(b.band, draft.band(b.score));
            assert_eq!(a.model_version, "default-1");
            assert_eq!(b.model_version, "draft-2");
        }
        assert_eq!(series[0].scores.len(), 8);
        assert_eq!(series[1].scores.len(), 8);
        // The draft's stricter bands see the same days differently at least once.
        let bands = |s: &ScoreSeries| s.scores.iter().map(|x| x.band).collect::<Vec<_>>();
        assert_ne!(bands(&series[0]), bands(&series[1]));
    }

    #[test]
    fn replaying_twice_or_in_another_order_gives_identical_scores() {
        let model = HealthModel::default();
        let events = tokyo_history();
        let (from, to) = (date(2026, 3, 1), date(2026, 3, 10));
        let once = replay_account(&[&model], &events, from, to);
        assert_eq!(once, replay_account(&[&model], &events, from, to));
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(once, replay_account(&[&model], &reversed, from, to));
        // A repeated event (same id, same instant) counts once.
        let mut doubled = events.clone();
        doubled.extend(events.iter().cloned());
        assert_eq!(once, replay_account(&[&model], &doubled, from, to));
    }

    #[test]
    fn an_account_without_a_profile_or_an_empty_period_has_no_scores() {
        let model = HealthModel::default();
        let no_profile = vec![login("l1", "2026-03-02T10:00:00+09:00", "u1")];
        let series = replay_account(&[&model], &no_profile, date(2026, 3, 1), date(2026, 3, 9));
        assert_eq!(series.len(), 1);
        assert!(series[0].scores.is_empty());
        let backwards = replay_account(
            &[&model],
            &tokyo_history(),
            date(2026, 3, 10),
            date(2026, 3, 1),
        );
        assert!(backwards[0].scores.is_empty());
    }

    #[test]
    fn a_midnight_skipped_by_daylight_saving_ends_the_day_at_the_gap() {
        // Chile starts summer time at 24:00 on 2 September 2023: 00:00 to 01:00 on 3
        // September does not exist in America/Santiago; the day starts at 01:00 -03, 04:00 UTC.
        let santiago = chrono_tz::America::Santiago;
        assert!(
            santiago
                .from_local_datetime(&date(2023, 9, 3).and_time(NaiveTime::MIN))
                .earliest()
                .is_none()
        );
        let start = start_of_day(santiago, date(2023, 9, 3));
        assert_eq!(start, at("2023-09-03T04:00:00Z").with_timezone(&Utc));
        assert_eq!(local_day(start, santiago), date(2023, 9, 3));
        assert_eq!(
            local_day(start - Duration::seconds(1), santiago),
            date(2023, 9, 2)
        );
        // An ordinary midnight.
        assert_eq!(
            start_of_day(chrono_tz::Asia::Tokyo, date(2026, 3, 4)),
            at("2026-03-03T15:00:00Z").with_timezone(&Utc)
        );
    }

    #[test]
    fn the_first_churn_counts_even_when_a_renewal_follows() {
        let berlin = profile(
            chrono_tz::Europe::Berlin,
            "standard",
            20_000.0,
            date(2025, 4, 1),
            date(2026, 4, 1),
            0,
        );
        let events = vec![
            upsert("p1", "2026-01-01T09:00:00+01:00", berlin),
            ev(
                "c2",
                "2026-03-25T10:00:00+01:00",
                None,
                EventPayload::Churned,
            ),
            // 23:30 UTC on March 19 is 00:30 on March 20 in Berlin.
            ev("c1", "2026-03-19T23:30:00Z", None, EventPayload::Churned),
            ev(
                "r1",
                "2026-04-10T10:00:00+02:00",
                None,
                EventPayload::ContractRenewed {
                    renewal_date: Some(date(2027, 4, 1)),
                },
            ),
        ];
        assert_eq!(
            churn_of(&events),
            Some(at("2026-03-19T23:30:00Z").with_timezone(&Utc))
        );
        assert_eq!(
            churn_label("acme", &events),
            Some(Churn {
                account: "acme".into(),
                day: date(2026, 3, 20),
            })
        );
        assert_eq!(churn_of(&events[..1]), None);
    }

    /// Activity of `contacts` on every `every`-th day from `first` to `last` (inclusive): a
    /// login each and one use of each of `features`, plus a report on those days that are
    /// Mondays.
    fn activity(
        prefix: &str,
        first: NaiveDate,
        last: NaiveDate,
        every: usize,
        contacts: &[&str],
        features: &[&str],
    ) -> Vec<Event> {
        let mut out = Vec::new();
        for (n, day) in first.iter_days().take_while(|d| *d <= last).enumerate() {
            if !n.is_multiple_of(every) {
                continue;
            }
            let when = format!("{day}T10:00:00+01:00");
            for c in contacts {
                out.push(login(&format!("{prefix}-l-{day}-{c}"), &when, c));
                for f in features {
                    out.push(feature(&format!("{prefix}-f-{day}-{c}-{f}"), &when, c, f));
                }
            }
            if day.weekday() == Weekday::Mon {
                let id = format!("{prefix}-r-{day}");
                out.push(ev(
                    &id,
                    &when,
                    Some(contacts[0]),
                    EventPayload::ReportCreated,
                ));
            }
        }
        out
    }

    fn nps_answer(id: &str, when: &str, score: u8) -> Event {
        let payload = EventPayload::NpsResponse {
            score,
            comment: None,
        };
        ev(id, when, Some("u1"), payload)
    }

    const KEYS: [&str; 4] = ["report_builder", "dashboard", "integration", "workflow"];

    /// Busy until January, thinning in February, silent from February 20, a detractor answer
    /// on February 25, churned on March 20.
    fn sliding_account() -> Vec<Event> {
        let p = profile(
            chrono_tz::Europe::Berlin,
            "standard",
            20_000.0,
            date(2025, 4, 1),
            date(2026, 4, 1),
            0,
        );
        let mut events = vec![upsert("a-p", "2025-10-01T09:00:00+01:00", p)];
        let contacts = ["u1", "u2", "u3"];
        events.extend(activity(
            "a1",
            date(2025, 10, 1),
            date(2026, 1, 31),
            1,
            &contacts,
            &KEYS,
        ));
        events.extend(activity(
            "a2",
            date(2026, 2, 1),
            date(2026, 2, 19),
            4,
            &["u1"],
            &[],
        ));
        events.push(nps_answer("a-n1", "2025-11-10T10:00:00+01:00", 8));
        events.push(nps_answer("a-n2", "2026-02-25T10:00:00+01:00", 3));
        events.push(ev(
            "a-c",
            "2026-03-20T16:00:00+01:00",
            None,
            EventPayload::Churned,
        ));
        events
    }

    /// Never uses the product and answered 2: red all along, and never churns.
    fn idle_account() -> Vec<Event> {
        let p = profile(
            chrono_tz::Europe::Berlin,
            "standard",
            20_000.0,
            date(2025, 4, 1),
            date(2026, 9, 1),
            0,
        );
        vec![
            upsert("b-p", "2025-10-01T09:00:00+01:00", p),
            nps_answer("b-n", "2025-12-01T10:00:00+01:00", 2),
        ]
    }

    /// Busy and happy to the end, then churns on March 15 without warning.
    fn surprise_account() -> Vec<Event> {
        let p = profile(
            chrono_tz::Europe::Berlin,
            "enterprise",
            80_000.0,
            date(2022, 1, 1),
            date(2027, 1, 1),
            3,
        );
        let mut events = vec![upsert("c-p", "2025-10-01T09:00:00+01:00", p)];
        events.extend(activity(
            "c1",
            date(2025, 10, 1),
            date(2026, 3, 14),
            1,
            &["u1", "u2", "u3", "u4", "u5"],
            &KEYS,
        ));
        events.push(nps_answer("c-n", "2026-01-15T10:00:00+01:00", 10));
        events.push(ev(
            "c-c",
            "2026-03-15T10:00:00+01:00",
            None,
            EventPayload::Churned,
        ));
        events
    }

    #[test]
    fn a_churned_account_with_declining_usage_is_red_before_it_churns() {
        let model = HealthModel::default();
        let events = sliding_account();
        let s = &replay_account(&[&model], &events, date(2026, 1, 1), date(2026, 3, 31))[0];
        assert_eq!(s.scores.len(), 90);
        let churn = churn_label("a", &events).expect("churned").day;
        assert_eq!(churn, date(2026, 3, 20));
        let band_on = |day: NaiveDate| {
            s.scores
                .iter()
                .find(|x| x.day == day)
                .map(|x| x.band)
                .expect("scored day")
        };
        // Busy in January: not red; silent and unhappy for weeks before the churn: red.
        assert_ne!(band_on(date(2026, 1, 15)), Band::Red);
        assert_eq!(band_on(date(2026, 3, 10)), Band::Red);
        assert_eq!(band_on(date(2026, 3, 19)), Band::Red);
    }

    #[test]
    fn backtest_of_three_replayed_accounts_gives_the_hand_computed_precision_and_recall() {
        let model = HealthModel::default();
        let (from, to) = (date(2026, 1, 1), date(2026, 3, 31));
        let accounts = [
            ("a", sliding_account()),
            ("b", idle_account()),
            ("c", surprise_account()),
        ];
        let mut history = Vec::new();
        let mut churns = Vec::new();
        for (account, events) in &accounts {
            let series = replay_account(&[&model], events, from, to);
            history.extend(daily_bands(account, &series[0].scores));
            churns.extend(churn_label(account, events));
        }
        assert!(
            !history
                .iter()
                .any(|h| h.account == "c" && h.band == Band::Red)
        );
        let r = backtest(&history, &churns, DEFAULT_HORIZON_DAYS);
        // a churned and was red in the 90 days before: caught. b was red and never churned: a
        // false alarm. c churned green: missed. Flagged {a, b}, churned {a, c}, caught {a}:
        // precision 1/2, recall 1/2.
        assert_eq!((r.accounts, r.churned, r.flagged), (3, 2, 2));
        assert_eq!((r.caught, r.false_alarms), (1, 1));
        assert_eq!(r.precision, Some(0.5));
        assert_eq!(r.recall, Some(0.5));
        // a's lead time is from its first red day of the window to March 20.
        let first_red = history
            .iter()
            .filter(|h| h.account == "a" && h.band == Band::Red)
            .map(|h| h.day)
            .min()
            .expect("a was red");
        assert_eq!(r.lead_days, [(date(2026, 3, 20) - first_red).num_days()]);
    }
}
