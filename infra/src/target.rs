//! Where the CLI's table commands point: one set of options (`--table`, `--profile`,
//! `--region`) and the one place that builds their SDK configuration.
//!
//! - Default: the standard AWS environment. After `eval "$(infra/stack.sh env)"` that is the
//!   local stack (its `AWS_ENDPOINT_URL_*`, region and test keys); endpoint variables are used
//!   only when they are set, as the SDK does.
//! - `--profile NAME`: a deployed stack, with that profile's credentials and region (`--region`
//!   wins). A shell that still carries the local stack's endpoint variables is refused rather
//!   than silently sent to the local stack with the profile's name on it.

use anyhow::{Context, Result};
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use nudge_shared::store::dynamo::DynamoStore;

/// Endpoint variables that would redirect DynamoDB calls (the SDK reads both).
const ENDPOINT_VARS: [&str; 2] = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"];

/// The table and the AWS account it lives in (`#[command(flatten)]` into every command that
/// reads or writes the table; global, so they also go after a nested subcommand).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The DynamoDB table (the deployed stack's is its `TableName` output).
    #[arg(
        long,
        env = "NUDGE_TABLE",
        default_value = "nudge-local",
        global = true
    )]
    pub table: String,
    /// A named AWS profile (~/.aws/config): talk to a deployed stack with its credentials and
    /// region instead of the environment's (by default the local stack's, after
    /// `eval "$(infra/stack.sh env)"`).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The AWS region (default: the profile's, else the environment's).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
}

impl Target {
    /// A usage problem with these options in this environment (`None`: fine). Checked before
    /// any call, so a mistake exits with the usage code instead of reaching the wrong stack.
    pub fn conflict(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        let profile = self.profile.as_deref()?;
        let set: Vec<String> = ENDPOINT_VARS
            .iter()
            .filter_map(|k| env(k).filter(|v| !v.is_empty()).map(|v| format!("{k}={v}")))
            .collect();
        (!set.is_empty()).then(|| {
            format!(
                "--profile {profile} targets a deployed stack, but {} would send its calls \
                 elsewhere (the local stack's environment?): unset it or use a fresh shell",
                set.join(" and ")
            )
        })
    }

    /// Where the calls go, for messages: `table t at http://127.0.0.1:8123` or
    /// `table t (profile p, region r)`.
    pub fn describe(&self, env: impl Fn(&str) -> Option<String>) -> String {
        let endpoint = ENDPOINT_VARS
            .iter()
            .find_map(|k| env(k).filter(|v| !v.is_empty()));
        match (&self.profile, endpoint) {
            (None, Some(url)) => format!("table {} at {url}", self.table),
            (profile, _) => {
                let mut how = Vec::new();
                if let Some(p) = profile {
                    how.push(format!("profile {p}"));
                }
                if let Some(r) = &self.region {
                    how.push(format!("region {r}"));
                }
                if how.is_empty() {
                    format!("table {} (AWS environment)", self.table)
                } else {
                    format!("table {} ({})", self.table, how.join(", "))
                }
            }
        }
    }

    /// The SDK configuration for these options (the HTTPS client of the Lambda functions).
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(nudge_shared::deps::https_client());
        if let Some(p) = &self.profile {
            // Explicit providers: the default chains would let the environment's keys and
            // region (the local stack's test ones) win over the profile.
            loader = loader.profile_name(p).credentials_provider(
                ProfileFileCredentialsProvider::builder()
                    .profile_name(p)
                    .build(),
            );
            if self.region.is_none() {
                loader =
                    loader.region(ProfileFileRegionProvider::builder().profile_name(p).build());
            }
        }
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        loader.load().await
    }

    /// The store of the table.
    pub async fn store(&self) -> Result<DynamoStore> {
        let sdk = self.sdk_config().await;
        sdk.region()
            .context("no AWS region: pass --region, use a profile with one, or set AWS_REGION")?;
        Ok(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            self.table.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(profile: Option<&str>, region: Option<&str>) -> Target {
        Target {
            table: "nudge".into(),
            profile: profile.map(str::to_string),
            region: region.map(str::to_string),
        }
    }

    fn local_env(k: &str) -> Option<String> {
        (k == "AWS_ENDPOINT_URL_DYNAMODB").then(|| "http://127.0.0.1:8123".to_string())
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_profile_in_a_shell_pointing_at_the_local_stack_is_refused_with_the_variable() {
        let e = target(Some("prod"), None)
            .conflict(local_env)
            .unwrap_or_default();
        assert!(e.contains("--profile prod"), "{e}");
        assert!(
            e.contains("AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8123"),
            "{e}"
        );
        assert_eq!(target(Some("prod"), None).conflict(no_env), None);
        assert_eq!(target(None, Some("eu-west-1")).conflict(local_env), None);
        let empty = |_: &str| Some(String::new());
        assert_eq!(target(Some("prod"), None).conflict(empty), None);
    }

    #[test]
    fn the_target_is_described_by_its_endpoint_or_its_profile_and_region() {
        assert_eq!(
            target(None, None).describe(local_env),
            "table nudge at http://127.0.0.1:8123"
        );
        assert_eq!(
            target(Some("prod"), Some("ap-northeast-1")).describe(no_env),
            "table nudge (profile prod, region ap-northeast-1)"
        );
        assert_eq!(
            target(None, None).describe(no_env),
            "table nudge (AWS environment)"
        );
    }

    #[tokio::test]
    async fn an_explicit_region_wins_and_the_table_is_kept() {
        let t = target(None, Some("eu-west-1"));
        let sdk = t.sdk_config().await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let store = t.store().await.expect("store");
        assert_eq!(store.table(), "nudge");
    }
}
