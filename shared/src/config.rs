//! Configuration, read once at cold start from the environment into one struct.

use std::collections::BTreeMap;
use std::env;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {message}")]
    Invalid { name: &'static str, message: String },
    #[error("could not read the secret {source_name}: {message}")]
    Secret {
        source_name: String,
        message: String,
    },
}

pub use crate::domain::{BusinessHours, FrequencyCap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start_hour: u32,
    pub end_hour: u32,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    /// From address for customer email (a verified SES identity).
    pub sender: String,
    /// The deploying company, as customer emails are signed; `None` = the CSM's name only.
    pub company_name: Option<String>,
    /// The product customers use, as email footers name it; `None` = "our service".
    pub product_name: Option<String>,
    /// The product's web app, the call to action of emails whose nudge carries no `link`;
    /// `None` = those emails show no link.
    pub app_url: Option<String>,
    /// The SES configuration set mail is sent with; SES feedback from another is ignored.
    pub configuration_set: Option<String>,
    /// The SNS topic the configuration set publishes feedback to; feedback from another
    /// topic is ignored.
    pub feedback_topic_arn: Option<String>,
    /// The AWS account that sends the mail; feedback about another account's mail is ignored.
    pub sending_account_id: Option<String>,
    pub csm_topic_arn: Option<String>,
    /// Work queues per function with a queue worker (`NUDGE_QUEUE_URLS`:
    /// `health=https://sqs...,milestones=...`).
    pub queue_urls: BTreeMap<String, String>,
    pub raw_event_ttl_days: u32,
    /// Days a finished nudge, its delivery-log entries and its provider-message mapping are
    /// kept (DynamoDB TTL from the moment it finished): they hold addresses and subjects.
    pub delivery_retention_days: u32,
    pub quiet_hours: QuietHours,
    /// Recipient-local hours in which customer-facing, non-urgent nudges may leave.
    pub business_hours: BusinessHours,
    /// Base URL of the HTTP API (for unsubscribe links); empty = derive from the request.
    pub public_base_url: String,
    /// Shards of each due-time bucket in the `due` GSI (spreads hot buckets).
    pub due_shards: u32,
    /// Shards of the account index the daily health run walks (`ACCOUNTS#<shard>`). Fixed
    /// once deployed: an account stays in the shard it was indexed under.
    pub health_index_shards: u32,
    /// The onboarding program (welcome, weekly checks) runs for accounts whose contract started
    /// at most this many days before Nudge first heard of them: switching Nudge on over an
    /// existing customer base starts no program for it.
    pub welcome_max_age_days: u32,
    pub cap: FrequencyCap,
    /// Provider failures before a nudge is marked failed.
    pub max_attempts: u32,
    /// Soft bounces in a row that suppress an address.
    pub soft_bounce_limit: u32,
    /// The SES account's maximum send rate (messages per second): each function's sends are
    /// spaced to stay under it.
    pub max_send_rate: u32,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| env::var(k).ok())
    }

    /// Same as `from_env` over any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = get("NUDGE_TABLE")
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing("NUDGE_TABLE"))?;
        let num = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(s) if s.trim().is_empty() => Ok(default),
                Some(s) => s.trim().parse::<u32>().map_err(|_| ConfigError::Invalid {
                    name,
                    message: format!("expected a non-negative integer, got {s:?}"),
                }),
            }
        };
        let quiet_hours = match get("NUDGE_QUIET_HOURS") {
            None => QuietHours {
                start_hour: 21,
                end_hour: 8,
            },
            Some(s) => parse_quiet_hours(&s).ok_or(ConfigError::Invalid {
                name: "NUDGE_QUIET_HOURS",
                message: format!("expected START-END hours like 21-8, got {s:?}"),
            })?,
        };
        let business_hours = match get("NUDGE_BUSINESS_HOURS") {
            Some(s) if !s.trim().is_empty() => {
                s.parse()
                    .map_err(|e: crate::domain::window::BusinessHoursError| {
                        ConfigError::Invalid {
                            name: "NUDGE_BUSINESS_HOURS",
                            message: e.to_string(),
                        }
                    })?
            }
            _ => BusinessHours::default(),
        };
        let mut queue_urls = BTreeMap::new();
        for pair in get("NUDGE_QUEUE_URLS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (name, url) = pair
                .split_once('=')
                .filter(|(n, u)| !n.trim().is_empty() && !u.trim().is_empty())
                .ok_or_else(|| ConfigError::Invalid {
                    name: "NUDGE_QUEUE_URLS",
                    message: format!("expected function=queue-url pairs, got {pair:?}"),
                })?;
            queue_urls.insert(name.trim().to_string(), url.trim().to_string());
        }
        let shards = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            let n = num(name, default)?;
            if !(1..=64).contains(&n) {
                return Err(ConfigError::Invalid {
                    name,
                    message: "must be between 1 and 64".into(),
                });
            }
            Ok(n)
        };
        let delivery_retention_days = num("NUDGE_DELIVERY_RETENTION_DAYS", 400)?;
        if delivery_retention_days == 0 {
            return Err(ConfigError::Invalid {
                name: "NUDGE_DELIVERY_RETENTION_DAYS",
                message: "must be at least 1".into(),
            });
        }
        let due_shards = shards("NUDGE_DUE_SHARDS", 4)?;
        let health_index_shards = shards("NUDGE_HEALTH_INDEX_SHARDS", 8)?;
        Ok(Config {
            table,
            sender: get("NUDGE_SENDER").unwrap_or_else(|| "nudge@example.com".into()),
            company_name: get("NUDGE_COMPANY_NAME")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            product_name: get("NUDGE_PRODUCT_NAME")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            app_url: get("NUDGE_APP_URL")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            configuration_set: get("NUDGE_CONFIGURATION_SET").filter(|s| !s.is_empty()),
            feedback_topic_arn: get("NUDGE_FEEDBACK_TOPIC_ARN")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            sending_account_id: get("NUDGE_SENDING_ACCOUNT_ID")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            csm_topic_arn: get("NUDGE_CSM_TOPIC_ARN").filter(|s| !s.is_empty()),
            queue_urls,
            raw_event_ttl_days: num("NUDGE_RAW_EVENT_TTL_DAYS", 400)?,
            delivery_retention_days,
            quiet_hours,
            business_hours,
            public_base_url: get("NUDGE_PUBLIC_BASE_URL")
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            due_shards,
            health_index_shards,
            welcome_max_age_days: num("NUDGE_WELCOME_MAX_AGE_DAYS", 7)?,
            cap: FrequencyCap {
                per_day: num("NUDGE_CAP_PER_DAY", 1)?,
                per_week: num("NUDGE_CAP_PER_WEEK", 3)?,
            },
            max_attempts: num("NUDGE_MAX_ATTEMPTS", 5)?.max(1),
            soft_bounce_limit: num("NUDGE_SOFT_BOUNCE_LIMIT", 3)?.max(1),
            max_send_rate: num("NUDGE_MAX_SEND_RATE", 14)?.max(1),
        })
    }
}

fn parse_quiet_hours(s: &str) -> Option<QuietHours> {
    let (a, b) = s.trim().split_once('-')?;
    let start_hour: u32 = a.trim().parse().ok()?;
    let end_hour: u32 = b.trim().parse().ok()?;
    (start_hour < 24 && end_hour < 24).then_some(QuietHours {
        start_hour,
        end_hour,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = cfg(&[("NUDGE_TABLE", "t")]).unwrap();
        assert_eq!(c.raw_event_ttl_days, 400);
        assert_eq!(c.delivery_retention_days, 400);
        assert_eq!(
            c.quiet_hours,
            QuietHours {
                start_hour: 21,
                end_hour: 8
            }
        );
        assert_eq!(
            c.cap,
            FrequencyCap {
                per_day: 1,
                per_week: 3
            }
        );
        assert_eq!(c.business_hours, BusinessHours::default());
        assert_eq!(c.company_name, None, "no company name unless configured");
        let c = cfg(&[("NUDGE_TABLE", "t"), ("NUDGE_COMPANY_NAME", " Acme ")]).unwrap();
        assert_eq!(c.company_name.as_deref(), Some("Acme"));
        assert_eq!(c.app_url, None, "no app link unless configured");
        for (set, want) in [
            (" ", None),
            (" https://app.example ", Some("https://app.example")),
        ] {
            let c = cfg(&[("NUDGE_TABLE", "t"), ("NUDGE_APP_URL", set)]).unwrap();
            assert_eq!(c.app_url.as_deref(), want, "{set:?}");
        }
    }

    #[test]
    fn health_index_shards_default_to_8_and_must_be_1_to_64() {
        assert_eq!(cfg(&[("NUDGE_TABLE", "t")]).unwrap().health_index_shards, 8);
        let c = cfg(&[("NUDGE_TABLE", "t"), ("NUDGE_HEALTH_INDEX_SHARDS", " 64 ")]).unwrap();
        assert_eq!(c.health_index_shards, 64);
        for bad in ["0", "65", "eight"] {
            let e = cfg(&[("NUDGE_TABLE", "t"), ("NUDGE_HEALTH_INDEX_SHARDS", bad)]).unwrap_err();
            assert!(
                e.to_string().contains("NUDGE_HEALTH_INDEX_SHARDS"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn missing_table_is_a_clear_error() {
        let e = cfg(&[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable NUDGE_TABLE is required"
        );
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let e = cfg(&[
            ("NUDGE_TABLE", "t"),
            ("NUDGE_RAW_EVENT_TTL_DAYS", "forever"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("NUDGE_RAW_EVENT_TTL_DAYS"));
        let e = cfg(&[("NUDGE_TABLE", "t"), ("NUDGE_QUIET_HOURS", "25-8")]).unwrap_err();
        assert!(e.to_string().contains("NUDGE_QUIET_HOURS"));
        let e = cfg(&[("NUDGE_TABLE", "t"), ("NUDGE_QUEUE_URLS", "health")]).unwrap_err();
        assert!(e.to_string().contains("NUDGE_QUEUE_URLS"), "{e}");
        let c = cfg(&[
            ("NUDGE_TABLE", "t"),
            (
                "NUDGE_QUEUE_URLS",
                "health=https://sqs.example/q1, milestones=https://sqs.example/q2",
            ),
        ])
        .unwrap();
        assert_eq!(c.queue_urls["milestones"], "https://sqs.example/q2");
        let e = cfg(&[("NUDGE_TABLE", "t"), ("NUDGE_BUSINESS_HOURS", "9-18")]).unwrap_err();
        assert!(e.to_string().contains("NUDGE_BUSINESS_HOURS"), "{e}");
    }
}
