//! The single-table layout. Every item of an account lives in its partition, so one account's
//! state is one Query away; scheduled work is found through the sparse `due` GSI instead of scans.
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `ACCT#<id>` | `PROFILE` | account profile, pause flag, admin, lifecycle |
//! | `ACCT#<id>` | `CONTACT#<cid>` | contact profile, unsubscribed categories, cap counters |
//! | `ACCT#<id>` | `EVT#<event_id>` | raw event (TTL `ttl`), the de-duplication key |
//! | `ACCT#<id>` | `DAY#<yyyy-mm-dd>` | usage rollup of a UTC day |
//! | `ACCT#<id>` | `FIRSTS` | first occurrences (feature, report, setup step) |
//! | `ACCT#<id>` | `DL#<deadline_id>` | a deadline |
//! | `ACCT#<id>` | `NUDGE#<nudge_id>` | a nudge: pending/claimed/sent/blocked/failed; GSI keys while pending |
//! | `ACCT#<id>` | `LOG#<at>#<nudge_id>` | delivery log entry |
//! | `ADDR#<sha256(email)>` | `SUPPRESSION` | suppressed address (bounce/complaint) |
//! | `SYS` | `CHECKPOINT#<function>` | last run of a scheduled function |
//! | `MSG#<provider message id>` | `MSG` | → account + nudge, for SES feedback (TTL 400 days) |
//! | `STATS` | `KIND#<kind>#<variant>` | sent/delivered/opened/clicked counters (ADD) |
//!
//! GSI `due`: `gsi1pk = DUE#<yyyy-mm-ddThh:mm>#<shard>` (15-minute bucket), `gsi1sk = <send_at>#<pk>#<sk>`.

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

pub fn log_sk(at: DateTime<Utc>, nudge_id: &str) -> String {
    format!(
        "LOG#{}#{nudge_id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}
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

fn fnv1a(bytes: &[u8]) -> u64 {
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
