//! `Deps`: configuration, clients, resource names and keys, built once at cold start and
//! passed by reference to every handler. Never global.

mod keys;

use std::sync::Arc;

use crate::channels::lazy::OnFirstUse;
use crate::channels::pace::Paced;
use crate::channels::ses::SesMailer;
use crate::channels::sns::SnsNotifier;
use crate::channels::sqs::SqsQueue;
use crate::channels::{Mailer, NoQueue, Notifier, Queue};
use crate::config::{Config, ConfigError};
use crate::store::Store;
use crate::store::dynamo::DynamoStore;

pub use keys::{
    Keys, LinkKeys, LinkKeysError, MIN_LINK_KEY_LEN, MIN_SIGNING_SECRET_LEN, SigningSecret,
    SigningSecrets, is_key_id,
};

/// The secrets a function reads at cold start: only those it uses, so its role may read no
/// others. What it does not read stays empty and refuses everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    /// The request-signing secrets (current and previous): the function verifies requests.
    pub request_signing: bool,
    /// The link keys: the function signs or verifies links in customer email.
    pub link_keys: bool,
}

impl Secrets {
    pub const NONE: Secrets = Secrets {
        request_signing: false,
        link_keys: false,
    };
    pub const LINK_KEYS: Secrets = Secrets {
        request_signing: false,
        link_keys: true,
    };
    pub const ALL: Secrets = Secrets {
        request_signing: true,
        link_keys: true,
    };
}

pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub notifier: Arc<dyn Notifier>,
    /// Work fanned out to a function's own queue worker.
    pub queue: Arc<dyn Queue>,
    pub keys: Keys,
}

impl Deps {
    /// Cold start: config from the environment, SDK clients (endpoints from the standard
    /// `AWS_ENDPOINT_URL_*` variables locally) and the `secrets` the function uses (see
    /// [`load_keys`]). No work queue: see [`Deps::from_env_with_sqs`].
    pub async fn from_env(secrets: Secrets) -> Result<Deps, ConfigError> {
        Ok(Self::load(secrets).await?.0)
    }

    /// [`Deps::from_env`] plus the SQS work queues of `NUDGE_QUEUE_URLS`, for functions that
    /// fan work out. Separate so the other bootstraps do not link the SQS client.
    pub async fn from_env_with_sqs(secrets: Secrets) -> Result<Deps, ConfigError> {
        let (deps, sdk) = Self::load(secrets).await?;
        let urls = deps.config.queue_urls.clone();
        Ok(deps.with_queue(Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            urls,
        ))))
    }

    async fn load(secrets: Secrets) -> Result<(Deps, aws_config::SdkConfig), ConfigError> {
        let config = Config::from_env()?;
        let sdk = sdk_config_from_env().await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table.clone())
            .with_retention_days(config.delivery_retention_days);
        // Every function's first request goes to DynamoDB: open that connection now, beside
        // the secrets' load (`NUDGE_CONNECT_AT_INIT=0` skips it, for the bench's comparison).
        let connect = local("NUDGE_CONNECT_AT_INIT").is_none_or(|v| v != "0");
        let (keys, ()) = tokio::join!(load_keys(&sdk, secrets), async {
            if connect {
                store.open_connection().await;
            }
        });
        let keys = keys?;
        // SES and SNS are built on their first send: most invocations send through neither,
        // and each client built at init costs cold start (see `nudge bench lambda`).
        let ses = (sdk.clone(), config.configuration_set.clone());
        let sns = sdk.clone();
        let deps = Deps::new(
            config.clone(),
            Arc::new(store),
            Arc::new(Paced::new(
                OnFirstUse::new(move || {
                    SesMailer::new(
                        aws_sdk_sesv2::Client::from_conf(
                            aws_sdk_sesv2::config::Builder::from(&ses.0)
                                .retry_config(crate::channels::ses::no_retries())
                                .build(),
                        ),
                        ses.1.clone(),
                    )
                }),
                config.max_send_rate,
            )),
            Arc::new(OnFirstUse::new(move || {
                SnsNotifier::new(aws_sdk_sns::Client::from_conf(
                    aws_sdk_sns::config::Builder::from(&sns)
                        .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
                        .build(),
                ))
            })),
            keys,
        );
        Ok((deps, sdk))
    }

    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        notifier: Arc<dyn Notifier>,
        keys: Keys,
    ) -> Deps {
        Deps {
            config,
            store,
            mailer,
            notifier,
            queue: Arc::new(NoQueue),
            keys,
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
    aws_sdk_dynamodb::config::SharedHttpClient::new(ConnectorOnDemand(
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https(),
    ))
}

/// The SDK's HTTPS client, less the connector it builds and drops each time an SDK client
/// is built (`validate_base_client_config`, only to load the roots early): each such build
/// parses every root certificate again, five SDK clients over one shared HTTP client. The
/// connectors that carry requests are built and cached by the inner client as before, so the
/// roots are parsed once, when the first request (DynamoDB's, during init) needs one.
#[derive(Debug)]
struct ConnectorOnDemand(aws_sdk_dynamodb::config::SharedHttpClient);

impl aws_sdk_dynamodb::config::HttpClient for ConnectorOnDemand {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_sdk_dynamodb::config::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_final_config(
        &self,
        components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The SDK configuration from the standard AWS environment (region, credentials,
/// `AWS_ENDPOINT_URL_*`), with [`https_client`].
pub async fn sdk_config_from_env() -> aws_config::SdkConfig {
    let loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client());
    // Lambda puts the role's credentials in the environment, the first place the default
    // chain looks; building the chain also builds the clients of the places after it (an STS
    // client for web identity, among others), which cold start would pay for nothing.
    let loader = if env_credentials() {
        loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
    } else {
        loader
    };
    loader.load().await
}

/// Whether the environment holds credentials the default chain would take first (the same
/// variables and blank rule as its environment provider).
fn env_credentials() -> bool {
    let set = |name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    set("AWS_ACCESS_KEY_ID") && (set("AWS_SECRET_ACCESS_KEY") || set("SECRET_ACCESS_KEY"))
}

/// The secrets of `secrets`, read once. Local runs (cargo lambda watch, sam local, tests) set
/// them directly (`NUDGE_SIGNING_SECRET` and optionally `NUDGE_SIGNING_SECRET_PREVIOUS`;
/// `NUDGE_LINK_KEYS`, the key set's JSON), which wins; deployed functions get only the Secrets
/// Manager ARNs (`NUDGE_SIGNING_SECRET_ARN`: its `AWSCURRENT` and, when a rotation left one,
/// `AWSPREVIOUS` version; `NUDGE_LINK_KEYS_ARN`).
pub async fn load_keys(sdk: &aws_config::SdkConfig, secrets: Secrets) -> Result<Keys, ConfigError> {
    // Built only if a secret is read from Secrets Manager: building a client costs cold start.
    let client = std::sync::OnceLock::new();
    let client = || client.get_or_init(|| aws_sdk_secretsmanager::Client::new(sdk));
    let (signing, links) = tokio::join!(
        async {
            if secrets.request_signing {
                load_signing_secrets(client).await
            } else {
                Ok(SigningSecrets::default())
            }
        },
        async {
            if secrets.link_keys {
                load_link_keys(client).await
            } else {
                Ok(LinkKeys::default())
            }
        }
    );
    Ok(Keys {
        signing: signing?,
        links: links?,
    })
}

fn local(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn arn(name: &'static str, missing: &'static str) -> Result<String, ConfigError> {
    local(name).ok_or(ConfigError::Missing(missing))
}

fn signing_secret(
    value: String,
    source: impl Fn() -> String,
) -> Result<SigningSecret, ConfigError> {
    if value.len() < MIN_SIGNING_SECRET_LEN {
        return Err(ConfigError::Secret {
            source_name: source(),
            message: format!(
                "the secret is empty or shorter than {MIN_SIGNING_SECRET_LEN} characters"
            ),
        });
    }
    Ok(SigningSecret::new(value.into_bytes()))
}

async fn load_signing_secrets<'a>(
    client: impl Fn() -> &'a aws_sdk_secretsmanager::Client,
) -> Result<SigningSecrets, ConfigError> {
    if let Some(v) = local("NUDGE_SIGNING_SECRET") {
        let current = signing_secret(v, || "NUDGE_SIGNING_SECRET".into())?;
        let previous = local("NUDGE_SIGNING_SECRET_PREVIOUS")
            .map(|v| signing_secret(v, || "NUDGE_SIGNING_SECRET_PREVIOUS".into()))
            .transpose()?;
        return Ok(SigningSecrets::new(current, previous));
    }
    let arn = arn(
        "NUDGE_SIGNING_SECRET_ARN",
        "NUDGE_SIGNING_SECRET_ARN (or NUDGE_SIGNING_SECRET for local runs)",
    )?;
    let client = client();
    let (current, previous) = tokio::join!(
        secret_string(client, &arn, "AWSCURRENT"),
        secret_string(client, &arn, "AWSPREVIOUS")
    );
    let current = current?.ok_or_else(|| ConfigError::Secret {
        source_name: arn.clone(),
        message: "the secret or its AWSCURRENT version was not found".into(),
    })?;
    let current = signing_secret(current, || arn.clone())?;
    // A secret that was never rotated has no AWSPREVIOUS version.
    let previous = previous?
        .map(|v| signing_secret(v, || format!("{arn} (AWSPREVIOUS)")))
        .transpose()?;
    Ok(SigningSecrets::new(current, previous))
}

async fn load_link_keys<'a>(
    client: impl Fn() -> &'a aws_sdk_secretsmanager::Client,
) -> Result<LinkKeys, ConfigError> {
    if let Some(v) = local("NUDGE_LINK_KEYS") {
        return LinkKeys::parse(&v).map_err(|e| ConfigError::Invalid {
            name: "NUDGE_LINK_KEYS",
            message: e.to_string(),
        });
    }
    let arn = arn(
        "NUDGE_LINK_KEYS_ARN",
        "NUDGE_LINK_KEYS_ARN (or NUDGE_LINK_KEYS for local runs)",
    )?;
    let value = secret_string(client(), &arn, "AWSCURRENT")
        .await?
        .ok_or_else(|| ConfigError::Secret {
            source_name: arn.clone(),
            message: "the secret or its AWSCURRENT version was not found".into(),
        })?;
    LinkKeys::parse(&value).map_err(|e| ConfigError::Secret {
        source_name: arn,
        message: e.to_string(),
    })
}

/// The secret string of one version stage; `None` when the secret has no version there.
async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    stage: &str,
) -> Result<Option<String>, ConfigError> {
    match client
        .get_secret_value()
        .secret_id(arn)
        .version_stage(stage)
        .send()
        .await
    {
        Ok(out) => Ok(out.secret_string().map(str::to_string)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(ConfigError::Secret {
            source_name: format!("{arn} ({stage})"),
            message: format!("{}", aws_sdk_secretsmanager::Error::from(e)),
        }),
    }
}
