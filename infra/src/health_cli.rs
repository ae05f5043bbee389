//! `nudge model ...`, `nudge explain ...` and `nudge queue`: the health model as data, one
//! account's score explained, and the CSM priority list, against the table the CLI's targeting options name (`target.rs`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use nudge_shared::health::priority::{self, PriorityInput, PriorityRow};
use nudge_shared::health::service::{HealthError, load_model, models, parse_snapshot};
use nudge_shared::health::{HealthModel, HealthScore, diff};
use nudge_shared::store::dynamo::DynamoStore;
use nudge_shared::store::{
    HealthSnapshot, HealthStore, IndexedAccount, ModelSelection, ProfileStore,
};
use serde_json::json;

/// The selection and the model it names (the built-in default when none is active), as JSON.
pub async fn model_show(store: &DynamoStore, version: Option<&str>) -> Result<String> {
    let selection = store.model_selection().await?;
    let (name, model) = match version.or(selection.active.as_deref()) {
        Some(v) => (v.to_string(), stored_model(store, v).await?),
        None => ("built-in default".to_string(), HealthModel::default()),
    };
    let out = json!({
        "active": selection.active.unwrap_or_else(|| "built-in default".into()),
        "shadow": selection.shadow,
        "showing": name,
        "model": model,
    });
    Ok(serde_json::to_string_pretty(&out)?)
}

/// Every stored version, with what is active and shadow.
pub async fn model_list(store: &DynamoStore) -> Result<String> {
    let selection = store.model_selection().await?;
    let mut out = String::new();
    for v in store.model_versions().await? {
        let mark = if selection.active.as_deref() == Some(v.as_str()) {
            " (active)"
        } else if selection.shadow.as_deref() == Some(v.as_str()) {
            " (shadow)"
        } else {
            ""
        };
        writeln!(out, "{v}{mark}")?;
    }
    if selection.active.is_none() {
        writeln!(out, "active: the built-in default model")?;
    }
    Ok(out)
}

/// Validates a model file and stores it under its `version` (versions are immutable).
pub async fn model_set(store: &DynamoStore, file: &Path, now: DateTime<Utc>) -> Result<String> {
    let json = std::fs::read_to_string(file)
        .with_context(|| format!("reading the model from {}", file.display()))?;
    let model = HealthModel::parse(&json)
        .map_err(|e| anyhow::anyhow!("{} is not a valid model: {e}", file.display()))?;
    let canonical = serde_json::to_string(&model)?;
    if !store.put_model(&model.version, &canonical, now).await? {
        bail!(
            "model version {} is already stored and versions never change: give this one a new \"version\"",
            model.version
        );
    }
    Ok(format!(
        "stored model {v}; score with it from the next daily run: nudge model activate {v} (or --shadow to compare first)",
        v = model.version
    ))
}

/// Makes a stored version the active (or shadow) model; `default` = the built-in model.
pub async fn model_activate(store: &DynamoStore, version: &str, shadow: bool) -> Result<String> {
    let mut selection: ModelSelection = store.model_selection().await?;
    let chosen = if version == "default" {
        None
    } else {
        stored_model(store, version).await?;
        Some(version.to_string())
    };
    if shadow {
        selection.shadow = chosen;
    } else {
        selection.active = chosen;
    }
    store.select_models(&selection).await?;
    Ok(format!(
        "active: {}; shadow: {}",
        selection.active.as_deref().unwrap_or("built-in default"),
        selection.shadow.as_deref().unwrap_or("none")
    ))
}

/// Bands by account under the active and the shadow model on `day`: how bands would move.
pub async fn model_compare(
    store: &DynamoStore,
    accounts: &[String],
    day: NaiveDate,
) -> Result<String> {
    let mut out = String::new();
    let mut moved = 0;
    for account in accounts {
        let snaps = store.snapshots(account, day, day).await?;
        let active = snaps.iter().find(|s| !s.shadow);
        let shadow = snaps.iter().find(|s| s.shadow);
        if let (Some(a), Some(s)) = (active, shadow) {
            let mark = if a.band != s.band {
                moved += 1;
                "  <- moves"
            } else {
                ""
            };
            writeln!(
                out,
                "{account:<24} {:>3} {:<6} -> {:>3} {:<6}{mark}",
                a.score, a.band, s.score, s.band
            )?;
        }
    }
    writeln!(out, "{moved} account(s) change band")?;
    Ok(out)
}

/// `nudge explain ACCOUNT`: the score of `day` (default: the latest), its drivers, what changed
/// since the day before and why, and the last 30 days as a sparkline.
pub async fn explain(
    store: &DynamoStore,
    account: &str,
    day: Option<NaiveDate>,
    as_json: bool,
) -> Result<String> {
    let today = day.unwrap_or_else(|| Utc::now().date_naive());
    let from = today - Duration::days(30);
    let snaps: Vec<HealthSnapshot> = store
        .snapshots(account, from, today)
        .await?
        .into_iter()
        .filter(|s| !s.shadow)
        .collect();
    let scores: Vec<HealthScore> = snaps.iter().filter_map(parse_snapshot).collect();
    let Some(current) = scores.last() else {
        let known = store.account(account).await?.is_some();
        bail!(
            "no health score for {account} between {from} and {today}{}",
            if known {
                " (the daily health run has not scored it yet)"
            } else {
                ": no such account"
            }
        );
    };
    let previous = scores.iter().rev().nth(1);
    let change = previous.map(|p| diff(p, current));
    if as_json {
        return Ok(serde_json::to_string_pretty(&json!({
            "account_id": account,
            "score": current,
            "change": change,
            "history": snaps.iter().map(|s| json!({"day": s.day, "score": s.score, "band": s.band})).collect::<Vec<_>>(),
        }))?);
    }
    Ok(render(account, current, change.as_ref(), &snaps))
}

fn render(
    account: &str,
    s: &HealthScore,
    change: Option<&nudge_shared::health::ScoreChange>,
    history: &[HealthSnapshot],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{account}  {}  score {} ({}){}  tier {}  phase {}{}",
        s.day,
        s.score,
        s.band.as_str(),
        if s.provisional { ", provisional" } else { "" },
        s.tier.as_str(),
        s.phase.as_str(),
        if s.active { "  active" } else { "" }
    );
    let _ = writeln!(out, "model {}", s.model_version);
    let _ = writeln!(
        out,
        "\n{:<22} {:<13} {:>8}  value",
        "factor", "family", "points"
    );
    for d in &s.drivers {
        let value = match (d.missing, d.value, d.versus) {
            (true, _, _) => "missing (neutral)".to_string(),
            (_, Some(v), Some(w)) => format!("{v:.1} vs {w:.1}"),
            (_, Some(v), None) => format!("{v:.1}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<22} {:<13} {:>+8.2}  {value}{}",
            d.factor.as_str(),
            d.family.as_str(),
            d.points,
            if d.triggered { "  (risk)" } else { "" }
        );
    }
    if let Some(c) = change {
        let _ = writeln!(out, "\nsince the day before: {:+}", c.delta);
        for r in &c.reasons {
            let _ = writeln!(out, "  {:<22} {:+.2}", r.factor.as_str(), r.points);
        }
    }
    let _ = writeln!(out, "\nlast {} days: {}", history.len(), sparkline(history));
    out
}

/// `▁▂▃▄▅▆▇█` over 0-100, one character per day.
pub fn sparkline(history: &[HealthSnapshot]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    history
        .iter()
        .map(|s| BARS[(usize::from(s.score.min(100)) * 7 + 50) / 100])
        .collect()
}

/// How far back `nudge queue` looks for an account's latest score: the daily run writes one a
/// day, so a week covers missed runs; an older score says little about today.
pub const QUEUE_SCORE_DAYS: i64 = 7;

/// Accounts read at once by `nudge queue` (two reads each): enough to hide the latency, few
/// enough not to throttle a provisioned table.
const QUEUE_READS_IN_FLIGHT: usize = 8;

/// `nudge queue`: the CSM priority list at `now`, most at stake first (see
/// `nudge_shared::health::priority`), as a table or, with `as_json`, an array of rows.
pub async fn queue(
    store: &DynamoStore,
    shards: u32,
    now: DateTime<Utc>,
    as_json: bool,
) -> Result<String> {
    let (rows, checked) = queue_rows(store, shards, now).await?;
    if as_json {
        return Ok(serde_json::to_string_pretty(&rows)?);
    }
    Ok(render_queue(&rows, checked))
}

/// The priority rows at `now` and how many accounts were checked. Ranked with the active model;
/// each account by its profile, firsts, NPS answers and latest active-model score.
pub async fn queue_rows(
    store: &DynamoStore,
    shards: u32,
    now: DateTime<Utc>,
) -> Result<(Vec<PriorityRow>, usize)> {
    let (model, _) = models(store).await?;
    let accounts = all_accounts(store, shards).await?;
    let model_ref = &model;
    let inputs: Vec<Option<PriorityInput>> = futures::stream::iter(&accounts)
        .map(|account| async move {
            // One day of rollups: the queue reads no usage, only the profile, firsts and NPS.
            let today = now.date_naive();
            let record = store
                .health_record(&account.account_id, today, today)
                .await?;
            let score = latest_score(store, &account.account_id, now).await?;
            anyhow::Ok(PriorityInput::from_record(
                model_ref,
                &record,
                account.first_seen,
                score,
                now,
            ))
        })
        .buffered(QUEUE_READS_IN_FLIGHT)
        .try_collect()
        .await?;
    let inputs: Vec<PriorityInput> = inputs.into_iter().flatten().collect();
    Ok((priority::rank(&model, &inputs, now), accounts.len()))
}

/// The newest active-model score of the last [`QUEUE_SCORE_DAYS`] that is not after `now`.
async fn latest_score(
    store: &DynamoStore,
    account: &str,
    now: DateTime<Utc>,
) -> Result<Option<HealthScore>> {
    // A day past UTC's: a zone ahead of UTC is already on its next local day.
    let to = now.date_naive() + Duration::days(1);
    let from = now.date_naive() - Duration::days(QUEUE_SCORE_DAYS);
    Ok(store
        .snapshots(account, from, to)
        .await?
        .iter()
        .filter(|s| !s.shadow)
        .filter_map(parse_snapshot)
        .filter(|s| s.at <= now)
        .max_by_key(|s| s.at))
}

fn render_queue(rows: &[PriorityRow], checked: usize) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "no account needs attention ({checked} account(s) checked)"
        );
        return out;
    }
    let width = |f: &dyn Fn(&PriorityRow) -> usize, min: usize| {
        rows.iter().map(f).max().unwrap_or(0).max(min)
    };
    let id_w = width(&|r| r.account_id.chars().count(), 7);
    let arr_w = width(&|r| priority::arr_text(r.arr).len(), 3);
    let why_w = width(&|r| r.detail.chars().count(), 3);
    let _ = writeln!(
        out,
        "{:>3}  {:<id_w$}  {:>arr_w$}  {:<10}  {:<why_w$}  next step",
        "#", "account", "ARR", "health", "why"
    );
    for (i, r) in rows.iter().enumerate() {
        let health = match (r.band, r.score) {
            (Some(b), Some(s)) => format!("{} {s}", b.as_str()),
            _ => "not scored".to_string(),
        };
        let _ = writeln!(
            out,
            "{:>3}  {:<id_w$}  {:>arr_w$}  {health:<10}  {:<why_w$}  {}",
            i + 1,
            r.account_id,
            priority::arr_text(r.arr),
            r.detail,
            r.next_step
        );
        if let Some(c) = &r.nps_comment {
            // One line whatever the customer typed.
            let c: Vec<&str> = c.split_whitespace().collect();
            let _ = writeln!(out, "     \"{}\"", c.join(" "));
        }
    }
    let by_reason: Vec<String> = priority::counts(rows)
        .iter()
        .map(|(reason, n)| format!("{n} {}", reason.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "\n{} of {checked} account(s) need attention: {}",
        rows.len(),
        by_reason.join(", ")
    );
    out
}

/// A stored model, validated again; a missing one says how to find or store one.
async fn stored_model(store: &DynamoStore, version: &str) -> Result<HealthModel> {
    load_model(store, version).await.map_err(|e| match e {
        HealthError::MissingModel(_) => anyhow::anyhow!(
            "{e} (`nudge model list` shows the stored versions, `nudge model set FILE` stores one)"
        ),
        e => anyhow::Error::new(e),
    })
}

/// Every account of the index.
pub async fn all_accounts(store: &DynamoStore, shards: u32) -> Result<Vec<IndexedAccount>> {
    Ok(nudge_shared::health::service::all_accounts(store, shards).await?)
}

/// The models a backtest compares: the versions asked for, else the active one and the
/// shadow one (the built-in default when none is active).
pub async fn backtest_models(store: &DynamoStore, versions: &[String]) -> Result<Vec<HealthModel>> {
    let wanted: Vec<Option<String>> = if versions.is_empty() {
        let sel = store.model_selection().await?;
        std::iter::once(sel.active)
            .chain(sel.shadow.map(Some))
            .collect()
    } else {
        versions
            .iter()
            .map(|v| (v != "default").then(|| v.clone()))
            .collect()
    };
    let mut out = Vec::new();
    for v in wanted {
        out.push(match v {
            None => HealthModel::default(),
            Some(v) => stored_model(store, &v).await?,
        });
    }
    Ok(out)
}

/// Replays every indexed account's kept raw events over `from..=to` with each model and
/// reports precision and recall of the red band against `churned` labels within `horizon`.
pub async fn model_backtest(
    store: &DynamoStore,
    models: &[HealthModel],
    shards: u32,
    from: NaiveDate,
    to: NaiveDate,
    horizon_days: i64,
) -> Result<(String, serde_json::Value)> {
    use nudge_shared::events::parse_event;
    use nudge_shared::health::replay::{churn_label, daily_bands, replay_account};
    use nudge_shared::health::{BacktestReport, backtest};
    use nudge_shared::store::EventStore;

    if to < from {
        bail!("--to ({to}) must not be before --from ({from})");
    }
    let refs: Vec<&HealthModel> = models.iter().collect();
    let mut history: Vec<Vec<nudge_shared::health::DailyBand>> = vec![Vec::new(); models.len()];
    let mut churns = Vec::new();
    let accounts = all_accounts(store, shards).await?;
    for account in &accounts {
        let mut events = Vec::new();
        for raw in store.raw_events(&account.account_id).await? {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&raw.body) else {
                continue;
            };
            if let Ok(e) = parse_event(&v, raw.received_at) {
                events.push(e);
            }
        }
        if let Some(c) = churn_label(&account.account_id, &events) {
            churns.push(c);
        }
        for (i, series) in replay_account(&refs, &events, from, to).iter().enumerate() {
            history[i].extend(daily_bands(&account.account_id, &series.scores));
        }
    }
    let reports: Vec<(String, BacktestReport)> = models
        .iter()
        .zip(&history)
        .map(|(m, h)| (m.version.clone(), backtest(h, &churns, horizon_days)))
        .collect();
    let mut out = String::new();
    writeln!(
        out,
        "{} accounts, {} churned, {from}..{to}, horizon {horizon_days} days",
        accounts.len(),
        churns.len()
    )?;
    writeln!(
        out,
        "{:<20} {:>9} {:>7} {:>8} {:>10} {:>7} {:>17}",
        "model", "precision", "recall", "flagged", "caught", "false", "median lead days"
    )?;
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    for (v, r) in &reports {
        writeln!(
            out,
            "{v:<20} {:>9} {:>7} {:>8} {:>10} {:>7} {:>17}",
            pct(r.precision),
            pct(r.recall),
            r.flagged,
            r.caught,
            r.false_alarms,
            r.median_lead_days.map_or("-".into(), |d| format!("{d:.0}"))
        )?;
    }
    let json = serde_json::to_value(
        reports
            .iter()
            .map(|(v, r)| json!({"model": v, "report": r}))
            .collect::<Vec<_>>(),
    )?;
    Ok((out, json))
}
