//! The one helper every integration test uses: starts (or reuses) the local stack — DynamoDB
//! Local and moto — and gives each test its own table, so tests run in parallel.

pub mod mail;

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use nudge_infra::apigw;
pub use nudge_infra::local::{
    LOCAL_LINK_KEYS, LOCAL_SECRET, LOCAL_SENDER, LocalStack, local_keys, local_link_keys,
};
use nudge_shared::Deps;
use nudge_shared::ingest::lambda::Ingest;
use nudge_shared::store::dynamo::DynamoStore;
use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The feedback topic, configuration set and sending account of every test's configuration,
/// as in the SES feedback fixtures.
pub const FEEDBACK_TOPIC_ARN: &str = "arn:aws:sns:ap-northeast-1:123456789012:nudge-ses-feedback";
pub const FEEDBACK_CONFIGURATION_SET: &str = "nudge-events";
pub const FEEDBACK_ACCOUNT_ID: &str = "123456789012";

pub struct TestEnv {
    pub stack: LocalStack,
    pub table: String,
    pub topic_arn: String,
    /// The ingest function's state (owns the `Deps`).
    pub app: Ingest,
    /// The concrete store, for its capacity meter and direct reads.
    pub store: DynamoStore,
}

impl TestEnv {
    /// A fresh table named after the test.
    pub async fn new(test: &str) -> TestEnv {
        Self::with_config(test, |_| {}).await
    }

    pub async fn with_config(
        test: &str,
        tweak: impl FnOnce(&mut nudge_shared::config::Config),
    ) -> TestEnv {
        let stack = LocalStack::ensure_running().expect("local stack (infra/stack.sh up)");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let slug: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(60)
            .collect();
        let table = format!("t-{slug}-{}-{n}", std::process::id());
        stack.create_table(&table).await.expect("create table");
        let topic_arn = stack.prepare_messaging().await.expect("moto SES/SNS setup");
        let mut config = stack.config(&table, &topic_arn).expect("config");
        // The origin the SES feedback fixtures (tests/events/ses-*.json) were published under.
        config.feedback_topic_arn = Some(FEEDBACK_TOPIC_ARN.into());
        config.configuration_set = Some(FEEDBACK_CONFIGURATION_SET.into());
        config.sending_account_id = Some(FEEDBACK_ACCOUNT_ID.into());
        tweak(&mut config);
        let (deps, store) = stack.deps(config);
        TestEnv {
            stack,
            table,
            topic_arn,
            app: Ingest::new(deps),
            store,
        }
    }

    pub fn deps(&self) -> &Deps {
        &self.app.deps
    }

    /// Raw MIME messages moto accepted for `address`, in the order they were sent.
    pub async fn raw_to(&self, address: &str) -> Vec<String> {
        let data = self.stack.moto_data().await.expect("moto data");
        data["ses"]["RawMessage"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|m| {
                m["destinations"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|x| x.as_str() == Some(address)))
            })
            .map(|m| m["raw_data"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// POSTs a body to the real ingest handler, signed with the local secret, received at `at`.
    pub async fn post_events(&self, body: &str, at: DateTime<Utc>) -> (u16, Value) {
        let event = apigw::signed_post_events(LOCAL_SECRET.as_bytes(), body, at);
        self.call(&event).await
    }

    /// Sends an HTTP API event through the real ingest handler.
    pub async fn call(&self, event: &Value) -> (u16, Value) {
        let req = apigw::to_request(event).expect("valid HTTP API event");
        let resp = self.app.http(req).await;
        let status = resp.status().as_u16();
        let body = match resp.body() {
            lambda_http::Body::Text(t) => {
                serde_json::from_str(t).unwrap_or(Value::String(t.clone()))
            }
            _ => Value::Null,
        };
        (status, body)
    }
}

/// A time as used throughout the tests.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

/// One delivery sweep at `now`, as the 15-minute function runs it (with every feature's render
/// variables).
pub async fn sweep(
    deps: &Deps,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<nudge_shared::delivery::RunReport, nudge_shared::delivery::DeliveryError> {
    nudge_shared::delivery::sweep(deps, nudge_shared::registry::render_vars, now, run_id).await
}
