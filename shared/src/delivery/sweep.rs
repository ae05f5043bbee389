//! The sweep: every 15 minutes, one owner-agnostic run sends every due nudge, whoever planned
//! it (a deadline stage planned at ingest, a CSM alert planned by a daily job, a follow-up).
//! Features only plan; sending is here and in [`super::send`].
//!
//! Pending nudges sit on the sparse `due` index under 15-minute buckets (sharded). A run reads
//! the buckets from its checkpoint (minus a look-back for late writes, clock skew and expired
//! leases) to now, so its cost grows with the work due, not with the number of nudges stored.

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
    pub failed: usize,
    pub skipped: usize,
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

/// One sweep: deliver every due nudge, then advance the checkpoint.
pub async fn sweep(
    deps: &Deps,
    extra: ExtraVars,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<RunReport, DeliveryError> {
    let store = &deps.store;
    let checkpoint = store.checkpoint(CHECKPOINT).await?.unwrap_or(now);
    let from = (checkpoint.min(now) - LOOK_BACK).max(now - MAX_SCAN);
    let buckets = buckets_between(from, now);
    let due = store
        .due_nudges(&buckets, deps.config.due_shards, now)
        .await?;
    // A nudge claimed by another run whose lease has not expired yet is resolved by a later
    // run (sent by its owner, or `unknown_outcome` once the lease expires). That later run
    // must still scan its bucket: hold the checkpoint so that its look-back reaches it.
    let hold = due
        .iter()
        .filter(|n| n.status == NudgeStatus::Claimed && n.lease_until.is_some_and(|u| u >= now))
        .map(|n| bucket_start(n.send_at.max(n.created_at)) + LOOK_BACK)
        .min();
    let mut report = RunReport {
        run_id: run_id.into(),
        due: due.len(),
        ..Default::default()
    };
    // Accounts concurrently, each account's nudges one after another in due order: which of
    // two messages to one person the frequency cap lets through is decided by that order,
    // never by a race between them (and a simulation gives the same log every time).
    let outcomes: Vec<Result<Outcome, DeliveryError>> = stream::iter(per_account(due))
        .map(|nudges| async move {
            let mut out = Vec::with_capacity(nudges.len());
            for n in nudges {
                let r = deliver(deps, extra, &n, now, run_id).await;
                if let Err(e) = &r {
                    warn!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, error = %e, "delivery error; left for the next run");
                }
                out.push(r);
            }
            out
        })
        .buffer_unordered(CONCURRENCY)
        .flat_map(stream::iter)
        .collect()
        .await;
    for o in &outcomes {
        match o {
            Ok(o) => report.count(o),
            Err(_) => report.errors += 1,
        }
    }
    if report.errors == 0 {
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
        failed = report.failed,
        skipped = report.skipped,
        errors = report.errors,
        "delivery sweep"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
