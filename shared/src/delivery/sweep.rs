//! The sweep: every 15 minutes, one owner-agnostic run sends every due nudge, whoever planned
//! it (a deadline stage planned at ingest, a CSM alert planned by a daily job, a follow-up).
//! Features only plan; sending is here and in [`super::send`].
//!
//! Pending nudges sit on the sparse `due` index under 15-minute buckets (sharded). A run reads
//! the buckets from its checkpoint (minus a look-back for late writes, clock skew and expired
//! leases) to now, so its cost grows with the work due, not with the number of nudges stored.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tracing::{info, warn};

use super::DeliveryError;
use super::send::{Outcome, deliver};
use crate::Deps;
use crate::domain::{ExtraVars, Nudge, NudgeStatus};
use crate::store::schema;

/// How far before the checkpoint a run looks again (late writes, clock skew, expired leases).
pub const LOOK_BACK: Duration = Duration::minutes(15);
/// The oldest bucket a run ever scans (bounds a first run or a long outage).
pub const MAX_SCAN: Duration = Duration::days(8);
/// The checkpoint of the sweep (one for the whole table).
pub const CHECKPOINT: &str = "sweep";
/// Concurrent deliveries per run.
const CONCURRENCY: usize = 8;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub due: usize,
    pub sent: usize,
    pub blocked: usize,
    pub cancelled: usize,
    /// Due, but outside the recipient's send window: moved to the next opening.
    pub deferred: usize,
    pub retried: usize,
    /// The provider throttled the send: pending again, no attempt counted; the run stopped
    /// sending.
    pub throttled: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Not started: the run's time budget ran out or the provider throttled it.
    pub unstarted: usize,
    /// Nudges that hit a store error (left for the next run).
    pub errors: usize,
}

impl RunReport {
    fn count(&mut self, o: &Outcome) {
        match o {
            Outcome::Sent { .. } => self.sent += 1,
            Outcome::Blocked(_) => self.blocked += 1,
            Outcome::Cancelled(_) => self.cancelled += 1,
            Outcome::Deferred { .. } => self.deferred += 1,
            Outcome::Retry { .. } => self.retried += 1,
            Outcome::Throttled => self.throttled += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

/// The due buckets from `from` to `now`, inclusive, oldest first.
pub fn buckets_between(from: DateTime<Utc>, now: DateTime<Utc>) -> Vec<String> {
    let step = Duration::minutes(i64::from(schema::BUCKET_MINUTES));
    let mut out = Vec::new();
    let mut t = from.min(now);
    let last = schema::due_bucket(now);
    loop {
        let b = schema::due_bucket(t);
        let done = b == last;
        if out.last() != Some(&b) {
            out.push(b);
        }
        if done {
            break;
        }
        t += step;
        if t > now {
            t = now;
        }
    }
    out
}

/// Start of the due bucket `at` falls in (the GSI partition of a pending nudge is the bucket
/// of `max(send_at, created_at)`, see the store).
fn bucket_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let width = i64::from(schema::BUCKET_MINUTES) * 60;
    let secs = at.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(width), 0).unwrap_or(at)
}

/// Due nudges grouped by account, in the order of each account's first nudge; each group keeps
/// the due order. By account, not by contact: a nudge for "the admin" names its recipient only
/// when it is sent, so two nudges to one person may not share a contact id yet.
fn per_account(due: Vec<Nudge>) -> Vec<Vec<Nudge>> {
    let mut groups: Vec<Vec<Nudge>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for n in due {
        match index.get(&n.account_id) {
            Some(&i) => groups[i].push(n),
            None => {
                index.insert(n.account_id.clone(), groups.len());
                groups.push(vec![n]);
            }
        }
    }
    groups
}

/// How long a run may go on starting deliveries: until shortly before the Lambda's deadline,
/// so that no claim is left behind by a timeout (a claimed nudge whose run died becomes
/// `unknown_outcome`). Wall-clock time, not the run's "now": it bounds the work, never decides
/// what is due.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    stop_at: Option<std::time::Instant>,
}

impl Budget {
    /// No limit (simulations, tests, the CLI).
    pub const UNLIMITED: Budget = Budget { stop_at: None };

    /// Deliveries start until `stop_at`.
    pub fn until(stop_at: std::time::Instant) -> Budget {
        Budget {
            stop_at: Some(stop_at),
        }
    }

    fn left(&self) -> bool {
        self.stop_at.is_none_or(|t| std::time::Instant::now() < t)
    }
}

/// One sweep without a time limit (see [`sweep_within`]).
pub async fn sweep(
    deps: &Deps,
    extra: ExtraVars,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<RunReport, DeliveryError> {
    sweep_within(deps, extra, now, run_id, Budget::UNLIMITED).await
}

/// What became of one due nudge in a run: `None` when it was not started (the budget ran out
/// or the provider throttled the run).
type Attempt = (Nudge, Option<Result<Outcome, DeliveryError>>);

/// One sweep: deliver every due nudge, then advance the checkpoint. Stops starting deliveries
/// when `budget` runs out or the provider throttles a send; what was not started stays pending
/// and the checkpoint stays behind it, so the next run's scan reaches it.
pub async fn sweep_within(
    deps: &Deps,
    extra: ExtraVars,
    now: DateTime<Utc>,
    run_id: &str,
    budget: Budget,
) -> Result<RunReport, DeliveryError> {
    let store = &deps.store;
    let checkpoint = store.checkpoint(CHECKPOINT).await?.unwrap_or(now);
    let from = (checkpoint.min(now) - LOOK_BACK).max(now - MAX_SCAN);
    let buckets = buckets_between(from, now);
    let due = store
        .due_nudges(&buckets, deps.config.due_shards, now)
        .await?;
    let mut report = RunReport {
        run_id: run_id.into(),
        due: due.len(),
        ..Default::default()
    };
    // Accounts concurrently, each account's nudges one after another in due order: which of
    // two messages to one person the frequency cap lets through is decided by that order,
    // never by a race between them (and a simulation gives the same log every time).
    let throttled = AtomicBool::new(false);
    let throttled = &throttled;
    let attempts: Vec<Attempt> = stream::iter(per_account(due))
        .map(|nudges| async move {
            let mut out = Vec::with_capacity(nudges.len());
            for n in nudges {
                if !budget.left() || throttled.load(Ordering::Relaxed) {
                    out.push((n, None));
                    continue;
                }
                let r = deliver(deps, extra, &n, now, run_id).await;
                match &r {
                    Err(e) => {
                        warn!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, error = %e, "delivery error; left for the next run");
                    }
                    Ok(Outcome::Throttled) => throttled.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                }
                out.push((n, Some(r)));
            }
            out
        })
        .buffer_unordered(CONCURRENCY)
        .flat_map(stream::iter)
        .collect()
        .await;
    for (_, o) in &attempts {
        match o {
            Some(Ok(o)) => report.count(o),
            Some(Err(_)) => report.errors += 1,
            None => report.unstarted += 1,
        }
    }
    if report.errors == 0 {
        let hold = hold_for(&attempts, now);
        store
            .set_checkpoint(CHECKPOINT, hold.map_or(now, |h| h.min(now)))
            .await?;
    }
    info!(
        due = report.due,
        sent = report.sent,
        blocked = report.blocked,
        deferred = report.deferred,
        retried = report.retried,
        throttled = report.throttled,
        failed = report.failed,
        skipped = report.skipped,
        unstarted = report.unstarted,
        errors = report.errors,
        "delivery sweep"
    );
    Ok(report)
}

/// Where the checkpoint must stay so that the next run's look-back reaches every nudge this
/// run left unfinished: not started; skipped (another run holds its claim, or the frequency
/// cap was contended); claimed by another run whose lease has not expired (resolved later:
/// sent by its owner, or `unknown_outcome` once the lease expires). A skipped nudge that was
/// in fact finished has left the index, so holding for it costs one scan, once.
fn hold_for(attempts: &[Attempt], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    attempts
        .iter()
        .filter(|(n, o)| match o {
            None | Some(Ok(Outcome::Skipped)) => true,
            Some(_) => n.status == NudgeStatus::Claimed && n.lease_until.is_some_and(|u| u >= now),
        })
        .map(|(n, _)| bucket_start(n.send_at.max(n.created_at)) + LOOK_BACK)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_checkpoint_stays_behind_skipped_and_unstarted_nudges_only() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        let n = |id: &str, hours_ago: i64| {
            let at = now - Duration::hours(hours_ago);
            Nudge::new(
                id,
                "a",
                None,
                crate::domain::NudgeKind::Milestone,
                at,
                "test",
                at,
            )
        };
        let sent = Some(Ok(Outcome::Sent {
            provider_message_id: "m".into(),
        }));
        assert_eq!(hold_for(&[(n("1", 5), sent)], now), None);
        let skipped = Some(Ok(Outcome::Skipped));
        let held = hold_for(&[(n("2", 3), skipped), (n("3", 2), None)], now).unwrap();
        assert!(held <= now - Duration::hours(3) + LOOK_BACK, "{held}");
    }

    #[test]
    fn one_accounts_nudges_go_one_after_another_in_due_order() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let n = |id: &str, account: &str, contact: Option<&str>| {
            Nudge::new(
                id,
                account,
                contact.map(str::to_string),
                crate::domain::NudgeKind::Milestone,
                at,
                "test",
                at,
            )
        };
        let groups = per_account(vec![
            n("1", "a", Some("u1")),
            n("2", "a", Some("u2")),
            n("3", "a", Some("u1")),
            n("4", "b", Some("u1")),
            n("5", "a", None),
            n("6", "a", None),
        ]);
        let ids: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|n| n.nudge_id.as_str()).collect())
            .collect();
        assert_eq!(ids, vec![vec!["1", "2", "3", "5", "6"], vec!["4"]]);
    }

    #[test]
    fn buckets_cover_the_range() {
        let a = Utc.with_ymd_and_hms(2026, 11, 20, 8, 50, 0).unwrap();
        let b = Utc.with_ymd_and_hms(2026, 11, 20, 9, 50, 0).unwrap();
        assert_eq!(
            buckets_between(a, b),
            vec![
                "2026-11-20T08:45",
                "2026-11-20T09:00",
                "2026-11-20T09:15",
                "2026-11-20T09:30",
                "2026-11-20T09:45"
            ]
        );
        assert_eq!(buckets_between(b, b), vec!["2026-11-20T09:45"]);
    }
}
