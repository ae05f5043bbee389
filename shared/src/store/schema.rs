//! The single-table layout. Every item of an account lives in its partition, so one account's
//! state is one Query away; scheduled work is found through the sparse `due` GSI instead of scans.
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `ACCT#<id>` | `PROFILE` | account profile, pause flag, admin, lifecycle |
//! | `ACCT#<id>` | `CONTACT#<cid>` | contact profile, unsubscribed categories, cap counters |
//! | `ACCT#<id>` | `EVT#<event_id>` | raw event (TTL `ttl`), the de-duplication key |
//! | `ACCT#<id>` | `DAY#<yyyy-mm-dd>` | usage rollup of an account-local day (the profile's `timezone`) |
//! | `ACCT#<id>` | `FIRSTS` | first occurrences (feature, report, setup step) |
//! | `ACCT#<id>` | `PULSE` | what the health playbooks last acted on (band, since, upsell renewal) |
//! | `ACCT#<id>` | `SAT` | satisfaction: tickets (`to_<ticket_id>`, `tc_<ticket_id>`), NPS answers (`n_<event_id>`) |
//! | `ACCT#<id>` | `HEALTH#<yyyy-mm-dd>#<model_version>` | one day's health score under one model (TTL `ttl`) |
//! | `ACCOUNTS#<shard>` | `ACCT#<id>` | the account index the daily health run walks (`account_id`, `first_seen`) |
//! | `ACCT#<id>` | `DL#<deadline_id>` | a deadline |
//! | `ACCT#<id>` | `TASK#<task>` | an agenda task (onboarding welcome, weekly check); GSI keys while unfinished |
//! | `ACCT#<id>` | `NUDGE#<nudge_id>` | a nudge: pending/claimed/sent/blocked/failed; GSI keys while pending; TTL `ttl` once final |
//! | `ACCT#<id>` | `LOG#<at>#<nudge_id>` | delivery log entry (TTL `ttl`) |
//! | `ADDR#<sha256(email)>` | `SUPPRESSION` | suppressed address (bounce/complaint) |
//! | `SYS` | `CHECKPOINT#<function>` | last run of a scheduled function |
//! | `SYS` | `MODEL#<version>` | a health model (JSON text), immutable |
//! | `SYS` | `MODELS` | which models score accounts (`active`, `shadow`) |
//! | `MSG#<provider message id>` | `MSG` | → account + nudge, for SES feedback (TTL `ttl`) |
//! | `STATS` | `KIND#<kind>#<variant>` | sent/delivered/opened/clicked counters (ADD) |
//!
//! `PROFILE`, `PULSE` and `SAT` are neighbours in sort-key order (nothing else in an account's
//! partition sorts between them), so the daily health read gets all three with one Query: a new
//! sort key of the account partition must not fall in `PROFILE..=SAT` (the test below lists
//! them).
//!
//! GSI `due`: `gsi1pk = DUE#<yyyy-mm-ddThh:mm>#<shard>` (15-minute bucket), `gsi1sk = <send_at>#<pk>#<sk>`;
//! agenda tasks: `gsi1pk = AGENDA#<yyyy-mm-ddThh>#<shard>` (hour bucket), `gsi1sk = <due_at>#<pk>#<sk>`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use chrono::{DateTime, NaiveDate, Timelike, Utc};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI_DUE: &str = "due";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const TTL: &str = "ttl";
/// Width of a due-time bucket; equal to the reminders cadence.
pub const BUCKET_MINUTES: u32 = 15;

pub fn account_pk(account_id: &str) -> String {
    format!("ACCT#{account_id}")
}
pub const PROFILE_SK: &str = "PROFILE";
pub const FIRSTS_SK: &str = "FIRSTS";
pub fn contact_sk(contact_id: &str) -> String {
    format!("CONTACT#{contact_id}")
}
pub fn event_sk(event_id: &str) -> String {
    format!("EVT#{event_id}")
}
pub fn day_sk(day: NaiveDate) -> String {
    format!("DAY#{}", day.format("%Y-%m-%d"))
}
pub fn deadline_sk(deadline_id: &str) -> String {
    format!("DL#{deadline_id}")
}
pub fn nudge_sk(nudge_id: &str) -> String {
    format!("NUDGE#{nudge_id}")
}
pub const SYS_PK: &str = "SYS";
pub fn checkpoint_sk(function: &str) -> String {
    format!("CHECKPOINT#{function}")
}

/// The satisfaction item (open tickets, NPS answers) ingest keeps for the health score.
pub const SAT_SK: &str = "SAT";
/// What the health playbooks last acted on; between `PROFILE` and `SAT` on purpose, so the
/// daily read gets it in the same Query.
pub const PULSE_SK: &str = "PULSE";
/// Prefixes of the satisfaction item's flat attributes: a ticket's open and close facts and
/// one NPS answer, each a small map set whole (a nested path cannot be SET on a missing map).
pub const TICKET_OPEN_PREFIX: &str = "to_";
pub const TICKET_CLOSE_PREFIX: &str = "tc_";
pub const NPS_PREFIX: &str = "n_";

pub fn snapshot_sk(day: NaiveDate, model_version: &str) -> String {
    format!("HEALTH#{}#{model_version}", day.format("%Y-%m-%d"))
}
/// The lowest sort key of `day`'s snapshots.
pub fn snapshots_from(day: NaiveDate) -> String {
    format!("HEALTH#{}", day.format("%Y-%m-%d"))
}
/// Just above every snapshot of `day`: `$` sorts right after the `#` that follows the date.
pub fn snapshots_through(day: NaiveDate) -> String {
    format!("HEALTH#{}$", day.format("%Y-%m-%d"))
}

/// The account index partition of an account: the FNV-1a shard of its id, as the `due` GSI
/// spreads nudges, so no single partition holds every account.
pub fn account_index_pk(account_id: &str, shards: u32) -> String {
    accounts_pk(account_index_shard(account_id, shards))
}
pub fn account_index_shard(account_id: &str, shards: u32) -> u32 {
    // The modulus is at most u32::MAX, so the remainder fits.
    (fnv1a(account_id.as_bytes()) % u64::from(shards.max(1))) as u32
}
pub fn accounts_pk(shard: u32) -> String {
    format!("ACCOUNTS#{shard}")
}
/// An agenda task of the account (`TASK#welcome`).
pub fn task_sk(task: &str) -> String {
    format!("TASK#{task}")
}

/// The hour bucket of an agenda task on the `due` index.
pub fn task_bucket(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// The `due` index partition of an agenda task: `AGENDA#<hour>#<shard>`.
pub fn task_partition(at: DateTime<Utc>, task_key: &str, shards: u32) -> String {
    let shard = fnv1a(task_key.as_bytes()) % shards.max(1) as u64;
    format!("AGENDA#{}#{shard}", task_bucket(at))
}

pub fn account_index_sk(account_id: &str) -> String {
    format!("ACCT#{account_id}")
}

pub fn model_sk(version: &str) -> String {
    format!("MODEL#{version}")
}
pub const MODEL_PREFIX: &str = "MODEL#";
pub const MODELS_SK: &str = "MODELS";

pub fn log_sk(at: DateTime<Utc>, nudge_id: &str) -> String {
    format!("{}#{nudge_id}", log_sk_from(at))
}

/// The lowest log sort key at or after `at` (the start of a `delivery_log_since` range).
pub fn log_sk_from(at: DateTime<Utc>) -> String {
    format!(
        "LOG#{}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// Above every log sort key (`~` sorts after the digits a time starts with).
pub const LOG_SK_END: &str = "LOG#~";
/// Suppression items are keyed by a hash: no address appears in a key.
pub fn address_pk(address: &str) -> String {
    use sha2::{Digest, Sha256};
    let norm = address.trim().to_lowercase();
    format!("ADDR#{}", hex::encode(Sha256::digest(norm.as_bytes())))
}
pub const SUPPRESSION_SK: &str = "SUPPRESSION";
pub fn message_pk(provider_message_id: &str) -> String {
    format!("MSG#{provider_message_id}")
}
pub const MESSAGE_SK: &str = "MSG";
pub const STATS_PK: &str = "STATS";
pub fn stats_sk(kind: &str, variant: &str) -> String {
    format!("KIND#{kind}#{variant}")
}

/// The 15-minute bucket a send time falls in, e.g. `2026-11-20T09:15`.
pub fn due_bucket(at: DateTime<Utc>) -> String {
    let minute = at.minute() - at.minute() % BUCKET_MINUTES;
    format!("{}T{:02}:{:02}", at.format("%Y-%m-%d"), at.hour(), minute)
}

/// The GSI partition for a nudge: bucket plus a stable shard from its id, so one busy bucket is
/// spread over `shards` partitions.
pub fn due_partition(at: DateTime<Utc>, nudge_key: &str, shards: u32) -> String {
    let shard = fnv1a(nudge_key.as_bytes()) % shards.max(1) as u64;
    format!("DUE#{}#{shard}", due_bucket(at))
}

/// FNV-1a: a hash that stays the same across Rust releases (the standard library's may not),
/// for shards and anything else that must not move between runs.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Creates the table as template.yaml declares it (for the local stack and tests).
pub async fn create_table(client: &Client, table: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("static attribute definition")
    };
    let key = |name: &str, kt: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kt)
            .build()
            .expect("static key schema")
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK))
        .attribute_definitions(attr(SK))
        .attribute_definitions(attr(GSI1PK))
        .attribute_definitions(attr(GSI1SK))
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GSI_DUE)
                .key_schema(key(GSI1PK, KeyType::Hash))
                .key_schema(key(GSI1SK, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("static GSI"),
        )
        .send()
        .await?;
    // DynamoDB Local accepts TTL settings (it does not expire items, which tests do not need).
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .expect("static TTL spec"),
        )
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn buckets_are_fifteen_minutes_wide() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 9, 29, 59).unwrap();
        assert_eq!(due_bucket(t), "2026-11-20T09:15");
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 23, 59, 0).unwrap();
        assert_eq!(due_bucket(t), "2026-11-20T23:45");
    }

    #[test]
    fn account_index_shards_are_stable_bounded_and_spread() {
        assert_eq!(
            account_index_pk("acme", 8),
            account_index_pk("acme", 8),
            "the same account always lands in the same shard"
        );
        let shards: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| account_index_shard(&format!("acct-{i}"), 8))
            .collect();
        assert_eq!(
            shards,
            (0..8).collect(),
            "200 accounts use every one of 8 shards"
        );
        assert_eq!(account_index_shard("acme", 1), 0);
        assert_eq!(account_index_sk("acme"), "ACCT#acme");
    }

    /// Every sort key (or prefix) of the account partition; add new ones here.
    const ACCOUNT_SORT_KEYS: &[&str] = &[
        "CONTACT#", "DAY#", "DL#", "EVT#", FIRSTS_SK, "HEALTH#", "LOG#", "NUDGE#", PROFILE_SK,
        PULSE_SK, SAT_SK, "TASK#",
    ];

    #[test]
    fn only_profile_pulse_and_sat_lie_in_the_range_the_health_read_queries() {
        let inside: Vec<&str> = ACCOUNT_SORT_KEYS
            .iter()
            .copied()
            .filter(|k| (PROFILE_SK..=SAT_SK).contains(k))
            .collect();
        assert_eq!(inside, vec![PROFILE_SK, PULSE_SK, SAT_SK]);
    }

    #[test]
    fn snapshot_range_bounds_cover_every_version_of_the_last_day_only() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let next = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let sk = snapshot_sk(d, "v2~shadow");
        assert!(snapshots_from(d) <= sk && sk <= snapshots_through(d));
        assert!(snapshots_through(d) < snapshot_sk(next, ""));
    }

    #[test]
    fn shard_is_stable_and_bounded() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
        let a = due_partition(t, "ACCT#a/NUDGE#x", 4);
        assert_eq!(a, due_partition(t, "ACCT#a/NUDGE#x", 4));
        for i in 0..100 {
            let p = due_partition(t, &format!("n{i}"), 4);
            let shard: u32 = p.rsplit('#').next().unwrap().parse().unwrap();
            assert!(shard < 4);
        }
    }
}
