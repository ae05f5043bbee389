//! Ingest: validated events in, de-duplicated raw records, rollups, firsts and profile state out.
//!
//! Order of writes per batch, chosen so a crash or a retry can neither lose an effect nor
//! double-count:
//! 1. the raw event, conditionally, in state `applying` (the de-duplication point); a record
//!    found still `applying` is an event never confirmed (a crash, a failed write): applied
//!    again, as every effect below is idempotent or conditional;
//! 2. idempotent effects (profiles and account changes are last-writer-wins, firsts are
//!    `if_not_exists`, unsubscribes are set adds; the health state: the account index entry,
//!    ticket opens and closes and NPS answers on the satisfaction item, each keyed so a replay
//!    writes the same thing);
//! 3. the only non-idempotent effect, the usage rollup, aggregated per (account, local day),
//!    in one transaction with its events' `applying -> applied` (conditional on `applying`),
//!    so it counts each event exactly once; events without usage are marked `applied` alone.
//!
//! A rollup's day is the account's local date of `occurred_at`, in the profile's `timezone`
//! (a login at 23:30 in New York counts for that New York day), so the health score's usage
//! windows, which count the account's own days, read whole days. The zone comes from the
//! latest `account_upserted` of the account in the same batch, else from what this container
//! learned in the last `KnownZones::TTL`, else from one profile read per account per batch
//! (then remembered); an account without a profile yet counts in UTC days.
//!
//! If a step after 1 fails, the affected events stay `applying` and their indexes are reported
//! in `retry` (or `rejected`, with the reason, when the store refused the write for good): the
//! client's resend applies them again and counts them once.

pub mod done;
pub mod http;
pub mod lambda;
pub mod pause;
mod request;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::Deps;
use crate::events::{Event, EventError, EventPayload, ZoneChange};
use crate::registry;
use crate::store::{
    AccountChange, Applied, COUNT_LIMIT, Counted, CountedEvents, Inserted, MAX_DAY_CONTACTS,
    NpsAnswer, RawEvent, RollupDelta, StoreError, TicketChange, Upserted,
};

/// Concurrent requests to DynamoDB per batch.
const CONCURRENCY: usize = 32;

/// A `customer_replied` older than this (a backfill) does not pause the account.
pub const REPLY_PAUSES_WITHIN: Duration = Duration::days(3);

/// One account's firsts in a batch: each key's earliest time, the event that made it, and
/// every event that carried one of the keys (retried together if the write fails).
#[derive(Default)]
struct BatchFirsts {
    keys: BTreeMap<String, DateTime<Utc>>,
    made_by: BTreeMap<String, usize>,
    events: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub index: usize,
    pub error: String,
}

/// The response body of `POST /events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
    pub retry: Vec<usize>,
}

/// Firsts this container already wrote: skip re-writing them (saves a write per batch per
/// account in steady state; a cold start only costs one redundant idempotent write).
#[derive(Default)]
pub struct KnownFirsts {
    seen: Mutex<HashSet<(String, String)>>,
}

impl KnownFirsts {
    const LIMIT: usize = 100_000;

    fn contains(&self, account: &str, key: &str) -> bool {
        self.seen
            .lock()
            .map(|s| s.contains(&(account.to_string(), key.to_string())))
            .unwrap_or(false)
    }

    fn insert_all(&self, account: &str, keys: impl IntoIterator<Item = String>) {
        if let Ok(mut s) = self.seen.lock() {
            if s.len() > Self::LIMIT {
                s.clear();
            }
            for k in keys {
                s.insert((account.to_string(), k));
            }
        }
    }
}

/// Account time zones this container learned (from `account_upserted` events and profile
/// reads), so the rollup day costs a profile read only once per account per `TTL`.
#[derive(Default)]
pub struct KnownZones {
    zones: Mutex<HashMap<String, LearnedZone>>,
}

/// An account's zone (`None`: no profile yet) and when it was learned.
type LearnedZone = (Option<Tz>, DateTime<Utc>);

impl KnownZones {
    const LIMIT: usize = 100_000;
    /// How long a learned zone is trusted: a zone changed (or a first profile stored) through
    /// another container is picked up within this time.
    const TTL: Duration = Duration::minutes(15);

    /// The zone learned for `account` (`Some(None)`: it had no profile), if learned recently.
    fn get(&self, account: &str, now: DateTime<Utc>) -> Option<Option<Tz>> {
        let zones = self.zones.lock().ok()?;
        let (zone, at) = zones.get(account)?;
        (now - *at < Self::TTL).then_some(*zone)
    }

    fn insert(&self, account: &str, zone: Option<Tz>, now: DateTime<Utc>) {
        if let Ok(mut zones) = self.zones.lock() {
            if zones.len() > Self::LIMIT {
                zones.clear();
            }
            zones.insert(account.to_string(), (zone, now));
        }
    }
}

/// Account days whose rollup already holds `MAX_DAY_CONTACTS` contacts: later batches send
/// no contacts for them (which the store would refuse, one wasted write each).
#[derive(Default)]
pub struct KnownFullDays {
    days: Mutex<HashSet<(String, NaiveDate)>>,
}

impl KnownFullDays {
    const LIMIT: usize = 100_000;

    fn contains(&self, account: &str, day: NaiveDate) -> bool {
        self.days
            .lock()
            .map(|d| d.contains(&(account.to_string(), day)))
            .unwrap_or(false)
    }

    fn insert(&self, account: &str, day: NaiveDate) {
        if let Ok(mut d) = self.days.lock() {
            if d.len() > Self::LIMIT {
                d.clear();
            }
            d.insert((account.to_string(), day));
        }
    }
}

/// What an ingest container remembers between batches.
#[derive(Default)]
pub struct IngestCache {
    pub firsts: KnownFirsts,
    pub zones: KnownZones,
    pub full_days: KnownFullDays,
}

/// What a first occurrence is called in the `FIRSTS` item.
pub fn first_key(payload: &EventPayload) -> Option<String> {
    match payload {
        EventPayload::FeatureUsed { feature } => Some(format!("feature_{feature}")),
        EventPayload::ReportCreated => Some("report".into()),
        EventPayload::SetupStepCompleted { step } => Some(format!("step_{step}")),
        EventPayload::Login => Some("login".into()),
        _ => None,
    }
}

/// Adds one event's usage to a rollup delta; returns false for events that are not usage.
pub fn add_usage(delta: &mut RollupDelta, event: &Event) -> bool {
    match &event.payload {
        EventPayload::Login => delta.logins += 1,
        EventPayload::FeatureUsed { feature } => {
            *delta.features.entry(feature.clone()).or_default() += 1
        }
        EventPayload::ReportCreated => delta.reports += 1,
        EventPayload::SupportTicketOpened { .. } => delta.tickets_opened += 1,
        EventPayload::SupportTicketClosed { .. } => delta.tickets_closed += 1,
        EventPayload::NpsResponse { score, .. } => {
            delta.nps_sum += u64::from(*score);
            delta.nps_count += 1;
        }
        _ => return false,
    }
    delta.events += 1;
    if let Some(c) = &event.contact_id
        && delta.contacts.len() < MAX_DAY_CONTACTS
    {
        // Only usage by a person makes the contact "active"; tickets and NPS count too. The
        // day keeps a bounded set (see `MAX_DAY_CONTACTS`).
        delta.contacts.insert(c.clone());
    }
    true
}

/// Whether an event counts in the usage rollup.
fn is_usage(event: &Event) -> bool {
    // `add_usage` is the one list of usage events: ask it with a scratch delta.
    add_usage(&mut RollupDelta::default(), event)
}

/// Raw record of an event (wire shape kept, TTL from config).
pub fn raw_record(event: &Event, now: DateTime<Utc>, ttl_days: u32) -> RawEvent {
    let occurred = event.occurred_at_utc();
    RawEvent {
        account_id: event.account_id.clone(),
        event_id: event.event_id.clone(),
        event_type: event.event_type().as_str(),
        contact_id: event.contact_id.clone(),
        occurred_at: occurred,
        received_at: now,
        body: event.to_wire().to_string(),
        // Retention runs from when the event happened; backfilled history older than a day is
        // kept `ttl_days` from its arrival instead, so it survives to be recomputed.
        expires_at: (occurred.max(now - Duration::days(1)) + Duration::days(i64::from(ttl_days)))
            .timestamp(),
    }
}

/// Events that failed after validation: `None` to retry, `Some(reason)` when the store
/// refused them for good (resending them unchanged would be refused again).
type Failures = BTreeMap<usize, Option<String>>;

/// Why an event was not applied although nothing failed for it: an earlier event of its
/// account must be sent again first.
fn held_back() -> StoreError {
    StoreError::Unavailable("an earlier event of the account must be sent again first".into())
}

fn record_failure(failed: &Mutex<Failures>, index: usize, err: &StoreError) {
    let verdict = (!err.is_retryable()).then(|| format!("not stored: {err}"));
    if let Ok(mut f) = failed.lock() {
        let slot = f.entry(index).or_insert(None);
        // A refusal is final whatever else failed.
        if slot.is_none() {
            *slot = verdict;
        }
    }
}

/// Stores a parsed batch. Never fails as a whole: each valid event ends up accepted,
/// duplicate, rejected (the store refused it for good) or in `retry`.
pub async fn ingest_batch(
    deps: &Deps,
    cache: &IngestCache,
    parsed: Vec<Result<Event, EventError>>,
    now: DateTime<Utc>,
) -> IngestOutcome {
    let known = &cache.firsts;
    let mut out = IngestOutcome::default();
    let mut valid: Vec<(usize, Event)> = Vec::new();
    // An event id repeated in the body is that event once: the later copies are duplicates
    // without a request (two copies in flight would both find the other's record unfinished).
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (index, r) in parsed.into_iter().enumerate() {
        match r {
            Ok(e) if !seen.insert((e.account_id.clone(), e.event_id.clone())) => {
                out.duplicates += 1
            }
            Ok(e) => valid.push((index, e)),
            Err(e) => out.rejected.push(Rejected {
                index,
                error: e.to_string(),
            }),
        }
    }

    // Zones the batch itself states (duplicates included: the client still says so).
    let batch_zones = batch_zones(valid.iter().map(|(_, e)| e));
    let failed: Mutex<Failures> = Mutex::new(BTreeMap::new());
    let failed_ref = &failed;

    // 1. Raw records, written `applying`: the de-duplication point. A record found still
    // `applying` is an event whose effects were never confirmed (a crash, a failed write):
    // it is applied again like a new one. An event whose count is its only effect gets no
    // write here: its record is created with its count in step 3, where the same condition
    // de-duplicates it (a duplicate runs only the idempotent hooks and firsts before).
    let ttl = deps.config.raw_event_ttl_days;
    let (count_only, valid): (Vec<_>, Vec<_>) = valid
        .into_iter()
        .partition(|(_, e)| count_is_only_effect(e));
    let unrecorded: HashSet<usize> = count_only.iter().map(|(i, _)| *i).collect();
    let inserted: Vec<(usize, Event, Result<Inserted, StoreError>)> = stream::iter(valid)
        .map(|(i, e)| async move {
            let r = deps.store.insert_raw_event(&raw_record(&e, now, ttl)).await;
            (i, e, r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut fresh: Vec<(usize, Event)> = count_only;
    // Per account, the earliest event the client must send again.
    let mut resent_from: HashMap<String, (DateTime<Utc>, usize)> = HashMap::new();
    for (i, e, r) in inserted {
        match r {
            Ok(Inserted::New) => fresh.push((i, e)),
            Ok(Inserted::Unfinished { since }) => {
                info!(account_id = %e.account_id, applying_since = %since, "unfinished event: applying it again");
                fresh.push((i, e));
            }
            Ok(Inserted::Duplicate) => out.duplicates += 1,
            Err(err) => {
                warn!(account_id = %e.account_id, error = %err, "raw event not stored");
                record_failure(failed_ref, i, &err);
                if err.is_retryable() {
                    let at = (e.occurred_at_utc(), i);
                    let slot = resent_from.entry(e.account_id.clone()).or_insert(at);
                    *slot = (*slot).min(at);
                }
            }
        }
    }
    // An event to be sent again holds back its account's later events: applied now, they would
    // come before it (a later use taking its place as the account's first, a move of a deadline
    // before its setting). They are applied after it, in order, when the client resends them.
    fresh.retain(|(i, e)| {
        let later = resent_from
            .get(&e.account_id)
            .is_some_and(|from| (e.occurred_at_utc(), *i) > *from);
        if later {
            record_failure(failed_ref, *i, &held_back());
        }
        !later
    });
    fresh.sort_by_key(|(i, _)| *i);

    // 2. Idempotent effects and feature hooks: accounts concurrently, each account's events in
    // `occurred_at` order, as if they had arrived one by one (a `contact_upserted` that moves a
    // contact to New York, then its `deadline_set`, plans the stages in New York time whatever
    // their order in the body). An event whose effect failed is not confirmed.
    let effects = per_account_in_time_order(&fresh)
        .into_iter()
        .map(|events| async move {
            let mut held = false;
            for (i, e) in events {
                if held {
                    record_failure(failed_ref, *i, &held_back());
                    continue;
                }
                if let Err(err) = apply_state_effect(deps, e, now).await {
                    warn!(account_id = %e.account_id, error = %err, "event effect failed");
                    record_failure(failed_ref, *i, &err);
                    // The account's later events wait for this one's resend (see above).
                    held = err.is_retryable();
                }
            }
        });
    stream::iter(effects)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;

    // Firsts, one write per account per batch (and none once this container has seen them).
    // The store says which it recorded (absent before): those are handed to the features'
    // firsts hooks (milestones), with the earliest event of the batch that made each.
    let mut firsts: BTreeMap<&str, BatchFirsts> = BTreeMap::new();
    let failed_effects: BTreeSet<usize> = failed
        .lock()
        .map(|f| f.keys().copied().collect())
        .unwrap_or_default();
    for (i, e) in fresh.iter().filter(|(i, _)| !failed_effects.contains(i)) {
        if let Some(k) = first_key(&e.payload) {
            if known.contains(&e.account_id, &k) {
                continue;
            }
            let entry = firsts.entry(e.account_id.as_str()).or_default();
            let t = e.occurred_at_utc();
            match entry.keys.get(&k) {
                Some(at) if *at <= t => {}
                _ => {
                    entry.keys.insert(k.clone(), t);
                    entry.made_by.insert(k, *i);
                }
            }
            entry.events.push(*i);
        }
    }
    let by_index: HashMap<usize, &Event> = fresh.iter().map(|(i, e)| (*i, e)).collect();
    let by_index_ref = &by_index;
    let first_writes = firsts.iter().map(|(account, batch)| async move {
        let fail = |what: &str, err: &StoreError| {
            warn!(account_id = %account, error = %err, "{what}");
            for i in &batch.events {
                record_failure(failed_ref, *i, err);
            }
        };
        let new = match deps.store.record_firsts(account, &batch.keys).await {
            Ok(new) => new,
            Err(err) => return fail("firsts not recorded", &err),
        };
        let made: Vec<registry::NewFirst<'_>> = new
            .iter()
            .filter_map(|k| {
                let event = by_index_ref.get(batch.made_by.get(k)?)?;
                Some(registry::NewFirst { key: k, event })
            })
            .collect();
        if let Err(err) = registry::on_firsts(deps, account, &made, now).await {
            // Undo this call's firsts, so the client's resend finds them new again.
            let undo: BTreeMap<String, DateTime<Utc>> = batch
                .keys
                .iter()
                .filter(|(k, _)| new.contains(*k))
                .map(|(k, t)| (k.clone(), *t))
                .collect();
            if let Err(e) = deps.store.forget_firsts(account, &undo).await {
                error!(account_id = %account, error = %e, "firsts not undone; their milestones are lost");
            }
            return fail("milestones not planned", &err);
        }
        known.insert_all(account, batch.keys.keys().cloned());
    });
    stream::iter(first_writes)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;

    // 3. Rollups, one write per (account, local day) that also confirms its events (applying
    // -> applied, atomically), only for events whose other effects held. An account whose zone
    // cannot be read keeps its usage events unconfirmed.
    let failed_now: BTreeSet<usize> = failed
        .lock()
        .map(|f| f.keys().copied().collect())
        .unwrap_or_default();
    let usage: Vec<&(usize, Event)> = fresh
        .iter()
        .filter(|(i, e)| !failed_now.contains(i) && is_usage(e))
        .collect();
    let accounts: BTreeSet<&str> = usage.iter().map(|(_, e)| e.account_id.as_str()).collect();
    let zones = account_zones(deps, &cache.zones, &batch_zones, accounts, now).await;
    let mut rollups: BTreeMap<(&str, NaiveDate), Vec<(&Event, Recorded)>> = BTreeMap::new();
    let mut index_of: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, e) in &usage {
        match zones.get(e.account_id.as_str()) {
            Some(Ok(zone)) => {
                let day = e.occurred_at_utc().with_timezone(zone).date_naive();
                rollups
                    .entry((e.account_id.as_str(), day))
                    .or_default()
                    .push((e, Recorded(!unrecorded.contains(i))));
                index_of.insert((e.account_id.as_str(), e.event_id.as_str()), *i);
            }
            Some(Err(err)) => record_failure(failed_ref, *i, err),
            None => record_failure(failed_ref, *i, &StoreError::Unavailable("no zone".into())),
        }
    }
    let chunks = rollups.iter().flat_map(|((account, day), events)| {
        events
            .chunks(COUNT_LIMIT)
            .map(move |chunk| (*account, *day, chunk))
    });
    let index_of = &index_of;
    let counted: Vec<Vec<usize>> = stream::iter(chunks)
        .map(|(account, day, chunk)| async move {
            let index = |id: &str| index_of.get(&(account, id)).copied();
            match count_chunk(deps, &cache.full_days, account, day, chunk, now).await {
                Ok(already) => already.iter().filter_map(|id| index(id)).collect(),
                Err(err) => {
                    warn!(account_id = %account, error = %err, "rollup failed");
                    for i in chunk.iter().filter_map(|(e, _)| index(&e.event_id)) {
                        record_failure(failed_ref, i, &err);
                    }
                    Vec::new()
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    // Counted meanwhile by another request carrying the same events: duplicates here.
    let late_duplicates: BTreeSet<usize> = counted.into_iter().flatten().collect();

    // The events without a rollup whose effects held are confirmed one by one. If that write
    // fails the event is still accepted: its effects are stored, and a resend only repeats
    // them (all idempotent).
    let failed = failed.into_inner().unwrap_or_default();
    let confirms = fresh
        .iter()
        .filter(|(i, e)| !failed.contains_key(i) && !is_usage(e))
        .map(|(_, e)| async move {
            if let Err(err) = deps.store.mark_applied(&e.account_id, &e.event_id).await {
                warn!(account_id = %e.account_id, error = %err, "event not marked applied; a resend repeats its effects");
            }
        });
    stream::iter(confirms)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;

    out.duplicates += late_duplicates.len();
    out.accepted = fresh
        .iter()
        .filter(|(i, _)| !failed.contains_key(i) && !late_duplicates.contains(i))
        .count();
    for (index, verdict) in failed {
        match verdict {
            None => out.retry.push(index),
            Some(error) => out.rejected.push(Rejected { index, error }),
        }
    }
    out.retry.sort_unstable();
    out.rejected.sort_by_key(|r| r.index);
    out
}

/// Whether an event's raw record was written in step 1 (to be confirmed by its count), or is
/// to be created by its count.
#[derive(Debug, Clone, Copy)]
struct Recorded(bool);

/// Events whose count in the day's rollup is their only effect: no state write (see
/// `apply_state_effect`), no feature hook acting on them. Tickets and NPS answers are usage
/// too, but write state of their own first.
fn count_is_only_effect(event: &Event) -> bool {
    matches!(
        event.payload,
        EventPayload::Login | EventPayload::FeatureUsed { .. } | EventPayload::ReportCreated
    )
}

/// Counts one (account, day)'s events (at most `COUNT_LIMIT`), confirming the recorded ones
/// and creating the others' records; returns the ids counted before (by another request, or
/// an earlier attempt of this one), which are left out here.
async fn count_chunk(
    deps: &Deps,
    full_days: &KnownFullDays,
    account: &str,
    day: NaiveDate,
    chunk: &[(&Event, Recorded)],
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let ttl = deps.config.raw_event_ttl_days;
    let mut confirm: Vec<&Event> = chunk.iter().filter(|(_, r)| r.0).map(|(e, _)| *e).collect();
    let mut create: Vec<&Event> = chunk
        .iter()
        .filter(|(_, r)| !r.0)
        .map(|(e, _)| *e)
        .collect();
    let mut already: Vec<String> = Vec::new();
    // Each pass counts, drops at least one event, or turns one to create into one to confirm.
    while !confirm.is_empty() || !create.is_empty() {
        let mut delta = RollupDelta::default();
        for e in confirm.iter().chain(&create) {
            add_usage(&mut delta, e);
        }
        if full_days.contains(account, day) {
            delta = delta.without_contacts();
        }
        let ids: Vec<String> = confirm.iter().map(|e| e.event_id.clone()).collect();
        let records: Vec<RawEvent> = create.iter().map(|e| raw_record(e, now, ttl)).collect();
        let events = CountedEvents {
            confirm: &ids,
            create: &records,
        };
        match deps
            .store
            .count_applied(account, day, &delta, events)
            .await?
        {
            Counted::Counted { contacts_full } => {
                if contacts_full {
                    full_days.insert(account, day);
                }
                break;
            }
            Counted::Conflicts {
                applied,
                unfinished,
            } => {
                let before = (confirm.len(), create.len());
                confirm.retain(|e| !applied.contains(&e.event_id));
                create.retain(|e| !applied.contains(&e.event_id));
                let (resumed, rest): (Vec<&Event>, Vec<&Event>) = create
                    .into_iter()
                    .partition(|e| unfinished.contains(&e.event_id));
                create = rest;
                for e in &resumed {
                    info!(account_id = %account, "unfinished event: counting it now");
                    confirm.push(e);
                }
                if (confirm.len() + create.len(), resumed.len()) == (before.0 + before.1, 0) {
                    return Err(StoreError::Backend(format!(
                        "events reported counted or unfinished are not in the rollup: {applied:?}, {unfinished:?}"
                    )));
                }
                already.extend(applied);
            }
        }
    }
    Ok(already)
}

/// The batch's events grouped by account (in account order), each group sorted by
/// `occurred_at`, then by position in the body.
fn per_account_in_time_order(fresh: &[(usize, Event)]) -> Vec<Vec<&(usize, Event)>> {
    let mut groups: BTreeMap<&str, Vec<&(usize, Event)>> = BTreeMap::new();
    for entry in fresh {
        groups
            .entry(entry.1.account_id.as_str())
            .or_default()
            .push(entry);
    }
    groups
        .into_values()
        .map(|mut events| {
            events.sort_by_key(|(i, e)| (e.occurred_at_utc(), *i));
            events
        })
        .collect()
}

/// Per account, the zone of its latest `account_upserted` (by `occurred_at`) among `events`.
fn batch_zones<'a>(events: impl Iterator<Item = &'a Event>) -> HashMap<String, Tz> {
    let mut latest: HashMap<&str, (DateTime<Utc>, Tz)> = HashMap::new();
    for e in events {
        if let EventPayload::AccountUpserted(p) = &e.payload {
            let at = e.occurred_at_utc();
            let slot = latest
                .entry(e.account_id.as_str())
                .or_insert((at, p.timezone));
            if at >= slot.0 {
                *slot = (at, p.timezone);
            }
        }
    }
    latest
        .into_iter()
        .map(|(a, (_, tz))| (a.to_string(), tz))
        .collect()
}

/// The zone of each account's rollup days (UTC while it has no profile), or why its profile
/// could not be read.
async fn account_zones<'a>(
    deps: &Deps,
    known: &KnownZones,
    batch: &HashMap<String, Tz>,
    accounts: BTreeSet<&'a str>,
    now: DateTime<Utc>,
) -> HashMap<&'a str, Result<Tz, StoreError>> {
    let mut zones = HashMap::new();
    let mut to_read = Vec::new();
    for account in accounts {
        if let Some(tz) = batch.get(account) {
            known.insert(account, Some(*tz), now);
            zones.insert(account, Ok(*tz));
        } else if let Some(zone) = known.get(account, now) {
            zones.insert(account, Ok(zone.unwrap_or(Tz::UTC)));
        } else {
            to_read.push(account);
        }
    }
    let read: Vec<(&str, Result<Tz, StoreError>)> = stream::iter(to_read)
        .map(|account| async move {
            match deps.store.account(account).await {
                Ok(record) => {
                    let zone = record.and_then(|r| r.profile).map(|p| p.timezone);
                    known.insert(account, zone, now);
                    (account, Ok(zone.unwrap_or(Tz::UTC)))
                }
                Err(err) => {
                    warn!(account_id = %account, error = %err, "account zone not read");
                    (account, Err(err))
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    zones.extend(read);
    zones
}

async fn apply_state_effect(deps: &Deps, e: &Event, now: DateTime<Utc>) -> Result<(), StoreError> {
    let store = &deps.store;
    let at = e.occurred_at_utc();
    let account = e.account_id.as_str();
    let contact = e.contact_id.as_deref();
    // Whose zone this event moved: deadline stages planned in the old one are planned again.
    let mut zone: Option<ZoneChange> = None;
    match (&e.payload, contact) {
        (EventPayload::AccountUpserted(p), _) => {
            let upserted = store.upsert_account(account, p, at).await?;
            // Even when the profile was stale: the index keeps the first time seen.
            store
                .index_account(account, at, deps.config.health_index_shards)
                .await?;
            let moved = match upserted {
                Upserted::Applied { zone_before } => zone_before != Some(p.timezone),
                Upserted::Stale => {
                    let stored = store.account_consistent(account).await?;
                    written_by_this_event(stored.and_then(|a| a.profile_at), at)
                }
            };
            zone = moved.then_some(ZoneChange::Account);
        }
        (EventPayload::ContactUpserted(p), Some(c)) => {
            let moved = match store.upsert_contact(account, c, p, at).await? {
                Upserted::Applied { zone_before } => zone_before != p.timezone,
                Upserted::Stale => {
                    let stored = store.contact_consistent(account, c).await?;
                    written_by_this_event(stored.and_then(|c| c.profile_at), at)
                }
            };
            zone = moved.then(|| ZoneChange::Contact(c.to_string()));
        }
        (EventPayload::AdminChanged { .. }, Some(c)) => {
            let change = AccountChange::AdminChanged {
                contact_id: c.to_string(),
            };
            let moved = match store.change_account(account, &change, at).await? {
                Applied::Applied => true,
                Applied::Stale => {
                    let stored = store.account_consistent(account).await?;
                    written_by_this_event(stored.and_then(|a| a.admin_changed_at), at)
                }
            };
            zone = moved.then_some(ZoneChange::Admin);
        }
        // A reply backfilled from long ago says nothing about today's conversation: only a
        // recent one pauses automation (the event is stored all the same).
        (EventPayload::CustomerReplied, _) if now - at <= REPLY_PAUSES_WITHIN => {
            let applied = store
                .change_account(
                    account,
                    &AccountChange::Paused {
                        until: None,
                        reason: None,
                    },
                    at,
                )
                .await?;
            pause::notify_paused(deps, e, applied, now).await?;
        }
        (EventPayload::AutomationResumed, _) => {
            store
                .change_account(account, &AccountChange::Resumed, at)
                .await?;
        }
        (EventPayload::Churned, _) => {
            store
                .change_account(account, &AccountChange::Churned, at)
                .await?;
        }
        (EventPayload::ContractRenewed { renewal_date }, _) => {
            let change = AccountChange::Renewed {
                renewal_date: *renewal_date,
            };
            store.change_account(account, &change, at).await?;
        }
        (
            EventPayload::SupportTicketOpened {
                ticket_id,
                severity,
            },
            _,
        ) => {
            let change = TicketChange::Opened {
                severity: *severity,
            };
            store.record_ticket(account, ticket_id, &change, at).await?;
        }
        (
            EventPayload::SupportTicketClosed {
                ticket_id,
                severity,
            },
            _,
        ) => {
            let change = TicketChange::Closed {
                severity: *severity,
            };
            store.record_ticket(account, ticket_id, &change, at).await?;
        }
        (EventPayload::NpsResponse { score, comment }, _) => {
            let answer = NpsAnswer {
                score: *score,
                at,
                comment: comment.clone(),
            };
            store.record_nps(account, &e.event_id, &answer).await?;
        }
        (EventPayload::Unsubscribed { category }, Some(c)) => {
            store
                .unsubscribe(account, c, category.as_deref().unwrap_or("all"))
                .await?;
        }
        _ => {}
    }
    if let Some(change) = &zone {
        registry::on_zone_change(deps, account, change, now).await?;
    }
    // Features plan from the event now (deadline stages, say), not at their next run.
    registry::on_ingest(deps, e, now).await
}

/// Whether a stale write found the state an earlier attempt of this same event wrote (the
/// stored clock is the event's time): that attempt may have failed after the write, before
/// its zone hook ran, so the client's resend runs the hook again (it is idempotent). A newer
/// event's state is left to that event.
fn written_by_this_event(stored_clock: Option<DateTime<Utc>>, at: DateTime<Utc>) -> bool {
    stored_clock.is_some_and(|c| c.timestamp_millis() == at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::events::{AccountProfile, Locale};

    fn upserted(id: &str, account: &str, tz: Tz, at: DateTime<Utc>) -> Event {
        Event {
            event_id: id.into(),
            account_id: account.into(),
            contact_id: None,
            occurred_at: at.fixed_offset(),
            payload: EventPayload::AccountUpserted(AccountProfile {
                name: "Acme".into(),
                plan: "pro".into(),
                industry: "retail".into(),
                tier: None,
                csm: None,
                timezone: tz,
                locale: Locale::En,
                contract_start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                renewal_date: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
                renewals: 0,
                arr: 1.0,
            }),
        }
    }

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, h, 0, 0).unwrap()
    }

    #[test]
    fn effects_run_per_account_in_occurred_at_order_then_body_order() {
        let batch = vec![
            (0, upserted("e0", "b", Tz::UTC, t(3))),
            (1, upserted("e1", "a", Tz::UTC, t(2))),
            (2, upserted("e2", "b", Tz::UTC, t(1))),
            (3, upserted("e3", "a", Tz::UTC, t(2))),
            (4, upserted("e4", "b", Tz::UTC, t(2))),
        ];
        let order: Vec<Vec<usize>> = per_account_in_time_order(&batch)
            .into_iter()
            .map(|g| g.into_iter().map(|(i, _)| *i).collect())
            .collect();
        assert_eq!(order, vec![vec![1, 3], vec![2, 4, 0]]);
    }

    #[test]
    fn the_latest_account_upserted_of_a_batch_decides_the_zone_whatever_its_position() {
        let events = [
            upserted("e1", "acme", chrono_tz::Asia::Tokyo, t(10)),
            upserted("e2", "acme", chrono_tz::America::New_York, t(9)),
            upserted("e3", "globex", chrono_tz::Europe::London, t(8)),
        ];
        let zones = batch_zones(events.iter());
        assert_eq!(zones["acme"], chrono_tz::Asia::Tokyo);
        assert_eq!(zones["globex"], chrono_tz::Europe::London);
        assert_eq!(zones.len(), 2);
    }

    #[test]
    fn a_learned_zone_and_a_missing_profile_are_remembered_for_fifteen_minutes() {
        let known = KnownZones::default();
        known.insert("acme", Some(chrono_tz::Asia::Tokyo), t(9));
        known.insert("bare", None, t(9));
        let later = t(9) + Duration::minutes(14);
        assert_eq!(known.get("acme", later), Some(Some(chrono_tz::Asia::Tokyo)));
        assert_eq!(known.get("bare", later), Some(None), "no profile yet: UTC");
        assert_eq!(known.get("acme", t(9) + Duration::minutes(15)), None);
        assert_eq!(known.get("globex", t(9)), None);
    }
}
