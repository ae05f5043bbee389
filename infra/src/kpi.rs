//! `nudge kpi`: the onboarding KPIs of the accounts whose contract starts within `--from..=--to`,
//! as of `--at`. The figures and their definitions are `nudge_shared::milestones::kpi`'s; this
//! reads their inputs through the store and prints them.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use nudge_shared::domain::NudgeKind;
use nudge_shared::health::service::{all_accounts, models};
use nudge_shared::milestones::kpi::{
    AccountInput, KpiSettings, LoggedNudge, OnboardingKpis, active_window, feature_days,
    onboarding_kpis,
};
use nudge_shared::store::{DeliveryLogStore, EventStore, HealthStore, ProfileStore};

/// Accounts read at once (four reads each), as `nudge queue` does.
const READS_IN_FLIGHT: usize = 8;

/// The KPIs of the cohort, from the active model's plans and thresholds and every indexed
/// account's profile, firsts, rollups of the active window and delivery log.
pub async fn onboarding<S>(
    store: &S,
    shards: u32,
    from: NaiveDate,
    to: NaiveDate,
    at: DateTime<Utc>,
) -> Result<OnboardingKpis>
where
    S: ProfileStore + EventStore + DeliveryLogStore + HealthStore,
{
    if from > to {
        bail!("--from ({from}) is after --to ({to})");
    }
    let (model, _) = models(store).await?;
    let settings = KpiSettings::from_model(&model);
    let accounts = all_accounts(store, shards).await?;
    let (model, settings_ref) = (&model, &settings);
    let inputs: Vec<Option<AccountInput>> = futures::stream::iter(&accounts)
        .map(|account| async move {
            let id = account.account_id.as_str();
            let Some(profile) = store.account(id).await?.and_then(|r| r.profile) else {
                return anyhow::Ok(None);
            };
            // Only the cohort's usage and log are read.
            if !(from..=to).contains(&profile.contract_start) {
                return Ok(None);
            }
            let (first, last) = active_window(at, profile.timezone, settings_ref.active_days);
            let log = store
                .delivery_log(id)
                .await?
                .iter()
                .filter(|e| e.kind == NudgeKind::Milestone)
                .map(LoggedNudge::from)
                .collect();
            Ok(Some(AccountInput {
                account_id: id.to_string(),
                contract_start: profile.contract_start,
                tz: profile.timezone,
                steps: model.onboarding_steps(&profile.plan).to_vec(),
                key_features: model.key_features(&profile.plan).to_vec(),
                firsts: store.firsts(id).await?,
                feature_days: feature_days(store.rollups(id, first, last).await?),
                log,
            }))
        })
        .buffered(READS_IN_FLIGHT)
        .try_collect()
        .await?;
    let inputs: Vec<AccountInput> = inputs.into_iter().flatten().collect();
    Ok(onboarding_kpis(&inputs, from, to, at, &settings))
}

/// `nudge kpi`: the summary, or with `as_json` the figures as JSON.
pub async fn kpi<S>(
    store: &S,
    shards: u32,
    from: NaiveDate,
    to: NaiveDate,
    at: DateTime<Utc>,
    as_json: bool,
) -> Result<String>
where
    S: ProfileStore + EventStore + DeliveryLogStore + HealthStore,
{
    let k = onboarding(store, shards, from, to, at).await?;
    if as_json {
        return Ok(serde_json::to_string_pretty(&k)?);
    }
    Ok(render(&k))
}

fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn days(d: Option<f64>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{d:.1} days"))
}

/// The readable summary: the figures, then the funnel and the milestones as rows.
pub fn render(k: &OnboardingKpis) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "onboarding of the {} account(s) with a contract starting {}..{}, as of {}",
        k.cohort,
        k.from,
        k.to,
        k.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if k.cohort == 0 {
        let _ = writeln!(out, "no account's contract starts in these dates");
        return out;
    }
    let _ = writeln!(
        out,
        "\ncompletion rate          {:>9}  ({} of {} with every step of their plan)",
        pct(k.completion_rate),
        k.completed,
        k.cohort
    );
    let _ = writeln!(
        out,
        "median days to complete  {:>9}",
        days(k.median_days_to_complete)
    );
    let _ = writeln!(
        out,
        "time to first value      {:>9}  (median to the first report; {} account(s) made one)",
        days(k.median_days_to_first_value),
        k.first_value
    );
    let _ = writeln!(
        out,
        "active rate              {:>9}  ({} of {} with {}+ key-feature uses in the {} days before)",
        pct(k.active_rate),
        k.active,
        k.cohort,
        k.active_uses,
        k.active_days
    );
    let step_w = k
        .funnel
        .iter()
        .map(|r| r.step.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(
        out,
        "\n{:<step_w$}  {:>5}  {:>5}  {:>7}",
        "step", "done", "of", "rate"
    );
    for r in &k.funnel {
        let _ = writeln!(
            out,
            "{:<step_w$}  {:>5}  {:>5}  {:>7}",
            r.step,
            r.done,
            r.of,
            pct(r.rate)
        );
    }
    let _ = writeln!(
        out,
        "\n{:<20}  {:>8}  {:>8}",
        "milestone", "messages", "accounts"
    );
    for m in &k.milestones {
        let _ = writeln!(
            out,
            "{:<20}  {:>8}  {:>8}",
            m.stage.as_str(),
            m.sent,
            m.accounts
        );
    }
    out
}
