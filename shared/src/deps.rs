//! `Deps`: configuration, clients and resource names, built once at cold start and passed by
//! reference to every handler. Never global.

use std::sync::Arc;

use crate::channels::ses::SesMailer;
use crate::channels::sns::SnsNotifier;
use crate::channels::sqs::SqsQueue;
use crate::channels::{Mailer, NoQueue, Notifier, Queue};
use crate::config::{Config, ConfigError};
use crate::store::Store;
use crate::store::dynamo::DynamoStore;

/// The HMAC key for request signatures (and, derived from it, unsubscribe tokens).
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SigningSecret(bytes.into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub notifier: Arc<dyn Notifier>,
    /// Work fanned out to a function's own queue worker.
    pub queue: Arc<dyn Queue>,
    pub secret: SigningSecret,
}

impl Deps {
    /// Cold start: config from the environment, SDK clients (endpoints from the standard
    /// `AWS_ENDPOINT_URL_*` variables locally), the signing secret from Secrets Manager when
    /// `NUDGE_SIGNING_SECRET_ARN` is set, else from `NUDGE_SIGNING_SECRET` (local runs only).
    /// No work queue: see [`Deps::from_env_with_sqs`].
    pub async fn from_env() -> Result<Deps, ConfigError> {
        Ok(Self::load().await?.0)
    }

    /// [`Deps::from_env`] plus the SQS work queues of `NUDGE_QUEUE_URLS`, for functions that
    /// fan work out. Separate so the other bootstraps do not link the SQS client.
    pub async fn from_env_with_sqs() -> Result<Deps, ConfigError> {
        let (deps, sdk) = Self::load().await?;
        let urls = deps.config.queue_urls.clone();
        Ok(deps.with_queue(Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            urls,
        ))))
    }

    async fn load() -> Result<(Deps, aws_config::SdkConfig), ConfigError> {
        let config = Config::from_env()?;
        let sdk = sdk_config_from_env().await;
        let secret = load_secret(&sdk).await?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table.clone());
        let deps = Deps::new(
            config.clone(),
            Arc::new(store),
            Arc::new(SesMailer::new(
                aws_sdk_sesv2::Client::from_conf(
                    aws_sdk_sesv2::config::Builder::from(&sdk)
                        .retry_config(crate::channels::ses::no_retries())
                        .build(),
                ),
                config.configuration_set.clone(),
            )),
            Arc::new(SnsNotifier::new(aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(&sdk)
                    .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
                    .build(),
            ))),
            secret,
        );
        Ok((deps, sdk))
    }

    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        notifier: Arc<dyn Notifier>,
        secret: SigningSecret,
    ) -> Deps {
        Deps {
            config,
            store,
            mailer,
            notifier,
            queue: Arc::new(NoQueue),
            secret,
        }
    }

    /// The same dependencies with `queue` for fanned-out work (SQS deployed; an in-process
    /// queue in `nudge simulate` and tests).
    pub fn with_queue(mut self, queue: Arc<dyn Queue>) -> Deps {
        self.queue = queue;
        self
    }

    /// The same, sending through other providers (a simulation's recording wrappers).
    pub fn with_providers(mut self, mailer: Arc<dyn Mailer>, notifier: Arc<dyn Notifier>) -> Deps {
        self.mailer = mailer;
        self.notifier = notifier;
        self
    }
}

/// The HTTPS client of every SDK client: hyper 1 + rustls with ring (the SDK's default
/// client uses aws-lc, which makes every bootstrap much larger for the same TLS).
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration from the standard AWS environment (region, credentials,
/// `AWS_ENDPOINT_URL_*`), with [`https_client`].
pub async fn sdk_config_from_env() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

async fn load_secret(sdk: &aws_config::SdkConfig) -> Result<SigningSecret, ConfigError> {
    // Local runs (cargo lambda watch, sam local, tests) set the secret directly; deployed
    // functions only get the Secrets Manager ARN.
    match std::env::var("NUDGE_SIGNING_SECRET") {
        Ok(v) if v.len() >= 16 => return Ok(SigningSecret::new(v.into_bytes())),
        Ok(v) if !v.is_empty() => {
            return Err(ConfigError::Invalid {
                name: "NUDGE_SIGNING_SECRET",
                message: "must be at least 16 characters".into(),
            });
        }
        _ => {}
    }
    let arn = std::env::var("NUDGE_SIGNING_SECRET_ARN")
        .ok()
        .filter(|a| !a.is_empty())
        .ok_or(ConfigError::Missing(
            "NUDGE_SIGNING_SECRET_ARN (or NUDGE_SIGNING_SECRET for local runs)",
        ))?;
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let out = client
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            source_name: arn.clone(),
            message: format!("{}", aws_sdk_secretsmanager::Error::from(e)),
        })?;
    let value = out.secret_string().unwrap_or_default();
    if value.len() < 16 {
        return Err(ConfigError::Secret {
            source_name: arn,
            message: "the secret is empty or shorter than 16 characters".into(),
        });
    }
    Ok(SigningSecret::new(value.as_bytes().to_vec()))
}
