//! Use-case tests: the real delivery sweep and feature hooks over `MemoryStore` (whose
//! conditional semantics `store::conformance` checks against DynamoDB Local too) and a
//! recording outbox instead of SES/SNS. No services: each test runs in milliseconds.
//!
//! Test-only, and above every layer (see `crate::architecture`): a use case crosses features
//! and delivery the way the Lambda functions do.

mod delivery;
mod health;
mod hostile;
mod ingest;
mod milestones;
mod reminders;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::Deps;
use crate::channels::{Mailer, Notification, Notifier, OutgoingEmail, SendError};
use crate::config::Config;
use crate::delivery::RunReport;
use crate::deps::{Keys, LinkKeys, SigningSecret, SigningSecrets};
use crate::domain::{Channel, DeliveryLogEntry, Locale, Nudge, NudgeKind, Role};
use crate::events::{AccountProfile, ContactProfile};
use crate::store::memory::MemoryStore;
use crate::store::{DeliveryLogStore, NudgeStore, ProfileStore};

/// Keys of both kinds for the use cases.
pub fn test_keys() -> Keys {
    Keys {
        signing: SigningSecrets::new(
            SigningSecret::new(b"use-case-test-signing-secret".to_vec()),
            None,
        ),
        links: LinkKeys::parse(
            r#"{"current":"u1","u1":"use-case-test-link-key-0123456789abcdef"}"#,
        )
        .expect("link keys"),
    }
}

pub(crate) const CSM_TOPIC: &str = "arn:aws:sns:ap-northeast-1:000000000000:nudge-csm-alerts";

/// One message the providers accepted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sent {
    pub channel: Channel,
    /// The email address; empty for SNS (the delivery log names the topic).
    pub to: String,
    pub subject: String,
    /// The plain text body (the SNS message for the CSM).
    pub text: String,
    pub provider_message_id: String,
}

/// SES and SNS as one recording fake; message ids are `msg-1`, `msg-2`, ...
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    sent: Mutex<Vec<Sent>>,
}

impl Outbox {
    fn record(&self, channel: Channel, to: &str, subject: &str, text: &str) -> String {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("msg-{}", sent.len() + 1);
        sent.push(Sent {
            channel,
            to: to.to_string(),
            subject: subject.to_string(),
            text: text.to_string(),
            provider_message_id: id.clone(),
        });
        id
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        // A provider call is a suspension point: a concurrent run gets its turn here.
        tokio::task::yield_now().await;
        Ok(self.record(Channel::Email, &email.to, &email.subject, &email.text))
    }
}

#[async_trait]
impl Notifier for Outbox {
    async fn notify(&self, n: &Notification) -> Result<String, SendError> {
        tokio::task::yield_now().await;
        Ok(self.record(Channel::Sns, "", &n.subject, &n.message))
    }
}

/// A `Deps` over the memory store and the outbox, with the production configuration defaults.
pub(crate) struct World {
    pub deps: Deps,
    pub store: Arc<MemoryStore>,
    pub outbox: Arc<Outbox>,
}

impl World {
    pub fn new() -> World {
        let env: HashMap<&str, &str> = [
            ("NUDGE_TABLE", "memory"),
            ("NUDGE_CSM_TOPIC_ARN", CSM_TOPIC),
            ("NUDGE_PUBLIC_BASE_URL", "https://nudge.example"),
        ]
        .into();
        let config =
            Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("test configuration");
        let store = Arc::new(MemoryStore::new());
        let outbox = Arc::new(Outbox::default());
        let deps = Deps::new(
            config,
            store.clone(),
            outbox.clone(),
            outbox.clone(),
            test_keys(),
        );
        World {
            deps,
            store,
            outbox,
        }
    }

    /// An account in `tz` (English, tech touch), known since `at`.
    pub async fn account(&self, account: &str, tz: Tz, at: DateTime<Utc>) {
        let profile = AccountProfile {
            name: format!("{account} Inc."),
            plan: "pro".into(),
            industry: "saas".into(),
            tier: None,
            csm: None,
            timezone: tz,
            locale: Locale::En,
            contract_start: NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
            renewal_date: NaiveDate::from_ymd_opt(2027, 1, 1).expect("date"),
            renewals: 0,
            arr: 12_000.0,
        };
        self.store
            .upsert_account(account, &profile, at)
            .await
            .expect("account");
    }

    /// A contact with the address [`email`] in `tz`.
    pub async fn contact(&self, account: &str, contact: &str, tz: Tz, at: DateTime<Utc>) {
        let profile = ContactProfile {
            email: email(account, contact),
            phone: None,
            name: contact.to_uppercase(),
            role: Role::User,
            timezone: Some(tz),
            locale: None,
        };
        self.store
            .upsert_contact(account, contact, &profile, at)
            .await
            .expect("contact");
    }

    /// A nudge of `kind` for `contact`, due at `send_at`, planned a day before.
    pub async fn plan(
        &self,
        account: &str,
        id: &str,
        contact: Option<&str>,
        kind: NudgeKind,
        send_at: DateTime<Utc>,
    ) {
        let n = Nudge::new(
            id,
            account,
            contact.map(str::to_string),
            kind,
            send_at,
            "test",
            send_at - chrono::Duration::days(1),
        );
        let shards = self.deps.config.due_shards;
        assert!(self.store.put_nudge(&n, shards).await.expect("put"));
    }

    /// One sweep as the 15-minute function runs it (every feature's render variables).
    pub async fn sweep(&self, now: DateTime<Utc>, run_id: &str) -> RunReport {
        crate::delivery::sweep(&self.deps, crate::registry::render_vars, now, run_id)
            .await
            .expect("sweep")
    }

    pub async fn nudge(&self, account: &str, id: &str) -> Nudge {
        self.store
            .nudge(account, id)
            .await
            .expect("read")
            .expect("nudge exists")
    }

    pub async fn log(&self) -> Vec<DeliveryLogEntry> {
        self.store.all_delivery_log().await.expect("log")
    }
}

pub(crate) fn email(account: &str, contact: &str) -> String {
    format!("{contact}@{account}.example")
}

pub(crate) fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}
