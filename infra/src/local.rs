//! The local stack (DynamoDB Local + moto) as seen from Rust: start or reuse it through
//! `infra/stack.sh`, and build SDK clients and `Deps` that point at it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{Credentials, SharedHttpClient};
use nudge_shared::channels::ses::SesMailer;
use nudge_shared::channels::sns::SnsNotifier;
use nudge_shared::config::Config;
use nudge_shared::deps::{Deps, Keys, LinkKeys, SigningSecret, SigningSecrets};
use nudge_shared::store::dynamo::DynamoStore;
use nudge_shared::store::schema;
use std::time::Duration;

use crate::faults::Faults;

/// The verified sender used for local runs.
pub const LOCAL_SENDER: &str = "nudge@nudge.test";
/// The CSM alerts topic created in moto.
pub const LOCAL_CSM_TOPIC: &str = "nudge-csm-alerts";
/// Signing secret for local runs only.
pub const LOCAL_SECRET: &str = "DEV-ONLY-local-signing-secret-do-not-use-in-production-0000000000";
/// Link key set for local runs only (`NUDGE_LINK_KEYS`'s shape).
pub const LOCAL_LINK_KEYS: &str = r#"{"current":"local1","local1":"DEV-ONLY-local-link-key-do-not-use-in-production-00000000000"}"#;

/// [`LOCAL_LINK_KEYS`], parsed.
pub fn local_link_keys() -> LinkKeys {
    LinkKeys::parse(LOCAL_LINK_KEYS).expect("LOCAL_LINK_KEYS is a valid key set")
}

/// The keys of local runs: [`LOCAL_SECRET`] (no previous one) and [`LOCAL_LINK_KEYS`].
pub fn local_keys() -> Keys {
    Keys {
        signing: SigningSecrets::new(SigningSecret::new(LOCAL_SECRET.as_bytes().to_vec()), None),
        links: local_link_keys(),
    }
}

/// The repository root (where `infra/stack.sh` lives).
pub fn repo_root() -> PathBuf {
    if let Ok(p) = std::env::var("NUDGE_REPO_ROOT") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

#[derive(Debug, Clone)]
pub struct LocalStack {
    pub dynamodb_url: String,
    pub moto_url: String,
}

static STARTED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

impl LocalStack {
    /// Endpoints from `NUDGE_DDB_PORT` / `NUDGE_MOTO_PORT` (defaults 8123 / 5123).
    pub fn endpoints() -> LocalStack {
        let port = |k: &str, d: u16| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse::<u16>().ok())
                .unwrap_or(d)
        };
        LocalStack {
            dynamodb_url: format!("http://127.0.0.1:{}", port("NUDGE_DDB_PORT", 8123)),
            moto_url: format!("http://127.0.0.1:{}", port("NUDGE_MOTO_PORT", 5123)),
        }
    }

    /// Starts the stack unless it is already up (once per process; the script itself locks
    /// against concurrent callers and reuses running services).
    pub fn ensure_running() -> Result<LocalStack> {
        let r = STARTED.get_or_init(|| {
            let script = repo_root().join("infra/stack.sh");
            let out = Command::new("bash")
                .arg(&script)
                .arg("up")
                .output()
                .map_err(|e| format!("could not run {}: {e}", script.display()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{} up failed:\n{}{}",
                    script.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        });
        match r {
            Ok(()) => Ok(LocalStack::endpoints()),
            Err(e) => bail!("{e}"),
        }
    }

    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_with(nudge_shared::deps::https_client())
    }

    fn sdk_config_with(&self, http: SharedHttpClient) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                Credentials::new("test", "test", None, None, "nudge-local"),
            ))
            .build()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.sdk_config())
            .endpoint_url(&self.dynamodb_url)
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    pub fn ses(&self) -> aws_sdk_sesv2::Client {
        let conf = aws_sdk_sesv2::config::Builder::from(&self.sdk_config())
            .endpoint_url(&self.moto_url)
            .build();
        aws_sdk_sesv2::Client::from_conf(conf)
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        let conf = aws_sdk_sns::config::Builder::from(&self.sdk_config())
            .endpoint_url(&self.moto_url)
            .build();
        aws_sdk_sns::Client::from_conf(conf)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::config::Builder::from(&self.sdk_config())
            .endpoint_url(&self.moto_url)
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    pub async fn create_table(&self, table: &str) -> Result<()> {
        schema::create_table(&self.dynamodb(), table)
            .await
            .with_context(|| format!("creating table {table} in DynamoDB Local"))
    }

    pub async fn delete_table(&self, table: &str) -> Result<()> {
        self.dynamodb()
            .delete_table()
            .table_name(table)
            .send()
            .await
            .with_context(|| format!("deleting table {table}"))?;
        Ok(())
    }

    /// Verifies the local sender in moto and creates the CSM topic; returns the topic ARN.
    /// Both calls are idempotent in effect (an existing identity is fine).
    pub async fn prepare_messaging(&self) -> Result<String> {
        let _ = self
            .ses()
            .create_email_identity()
            .email_identity(LOCAL_SENDER)
            .send()
            .await;
        let topic = self
            .sns()
            .create_topic()
            .name(LOCAL_CSM_TOPIC)
            .send()
            .await
            .context("creating the CSM topic in moto")?;
        topic
            .topic_arn()
            .map(str::to_string)
            .context("moto returned no topic ARN")
    }

    /// Config for a local run against `table`.
    pub fn config(&self, table: &str, csm_topic_arn: &str) -> Result<Config> {
        self.config_with(table, csm_topic_arn, &Default::default())
    }

    /// Config for a local run against `table`, with `overrides` taking precedence over the
    /// environment (e.g. fewer due-index shards for a small portfolio).
    pub fn config_with(
        &self,
        table: &str,
        csm_topic_arn: &str,
        overrides: &std::collections::BTreeMap<String, String>,
    ) -> Result<Config> {
        let table = table.to_string();
        let topic = csm_topic_arn.to_string();
        Config::from_lookup(|k| match k {
            _ if overrides.contains_key(k) => overrides.get(k).cloned(),
            "NUDGE_TABLE" => Some(table.clone()),
            "NUDGE_SENDER" => Some(LOCAL_SENDER.into()),
            "NUDGE_CSM_TOPIC_ARN" => Some(topic.clone()),
            "NUDGE_PUBLIC_BASE_URL" => Some("https://nudge.example.test".into()),
            other => std::env::var(other).ok(),
        })
        .context("local configuration")
    }

    /// `Deps` wired to the local stack, plus the concrete store (for its capacity meter). The
    /// clients are configured as the deployed functions' are (no SDK retries of sends).
    pub fn deps(&self, config: Config) -> (Deps, DynamoStore) {
        self.deps_with(config, &self.sdk_config(), RetryConfig::standard())
    }

    /// [`LocalStack::deps`] with every request through `faults`. The table's retries keep the
    /// deployed count (3 attempts) with millisecond back-off, so a simulation does not sleep.
    pub fn deps_through(&self, config: Config, faults: &Faults) -> (Deps, DynamoStore) {
        let sdk = self.sdk_config_with(faults.http_client(nudge_shared::deps::https_client()));
        let retry = RetryConfig::standard()
            .with_initial_backoff(Duration::from_millis(2))
            .with_max_backoff(Duration::from_millis(20));
        self.deps_with(config, &sdk, retry)
    }

    fn deps_with(
        &self,
        config: Config,
        sdk: &SdkConfig,
        retry: RetryConfig,
    ) -> (Deps, DynamoStore) {
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk)
            .endpoint_url(&self.dynamodb_url)
            .retry_config(retry)
            .build();
        let ses = aws_sdk_sesv2::config::Builder::from(sdk)
            .endpoint_url(&self.moto_url)
            .retry_config(nudge_shared::channels::ses::no_retries())
            .build();
        let sns = aws_sdk_sns::config::Builder::from(sdk)
            .endpoint_url(&self.moto_url)
            .retry_config(RetryConfig::disabled())
            .build();
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(dynamodb),
            config.table.clone(),
        )
        .with_retention_days(config.delivery_retention_days);
        let deps = Deps::new(
            config.clone(),
            Arc::new(store.clone()),
            Arc::new(SesMailer::new(
                aws_sdk_sesv2::Client::from_conf(ses),
                config.configuration_set.clone(),
            )),
            Arc::new(SnsNotifier::new(aws_sdk_sns::Client::from_conf(sns))),
            local_keys(),
        );
        (deps, store)
    }

    /// Everything moto has recorded (sent email, SNS notifications).
    pub async fn moto_data(&self) -> Result<serde_json::Value> {
        let url = format!("{}/moto-api/data.json", self.moto_url);
        let v = reqwest::get(&url)
            .await
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .context("moto data.json")?;
        Ok(v)
    }
}
