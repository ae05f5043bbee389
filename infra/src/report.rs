//! The demo's HTML report: one self-contained page (inline CSS and SVG, no script, no network)
//! of what Nudge did for the portfolio: KPIs, engagement per message kind, bands over time,
//! every account's timeline with its score line and each message as it was rendered, and every
//! deadline's stages in the recipient's local time.
//!
//! Values are HTML-escaped by minijinja's auto-escape (the template's name ends in `.html`),
//! the same escaper as the email templates; the charts are built here from numbers only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use minijinja::{Environment, context};
use serde::Serialize;
use serde_json::Value;

use crate::demo::{DemoData, band_moves};
use crate::portfolio::AccountCard;

const TEMPLATE: &str = include_str!("report.html");

#[derive(Serialize)]
struct Tile {
    label: &'static str,
    value: String,
    note: String,
}

#[derive(Serialize)]
struct KindRow {
    kind: String,
    sent: u64,
    delivered: u64,
    open_rate: String,
    click_rate: String,
    bounced: u64,
    /// Open rate below the portfolio's average.
    low: bool,
}

#[derive(Serialize)]
struct Item {
    /// Local time of the account.
    at: String,
    /// `event` or a delivery status (`sent`, `blocked`, `failed`).
    what: String,
    title: String,
    detail: String,
    /// The rendered message (HTML for email, text for SNS), for the preview.
    html: String,
    text: String,
}

#[derive(Serialize)]
struct AccountView {
    card: AccountCard,
    tier: String,
    band: String,
    score: String,
    chart: String,
    drivers: Vec<(String, String)>,
    risks: Vec<String>,
    items: Vec<Item>,
    messages: usize,
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "–".into()
    } else {
        format!("{:.0}%", 100.0 * n as f64 / of as f64)
    }
}

fn money(v: f64) -> String {
    format!("${}", nudge_shared::templates::thousands_separated(v))
}

/// The daily score of an account as an SVG line over band-coloured zones.
fn score_chart(days: &[(NaiveDate, u8, bool)], from: NaiveDate, to: NaiveDate) -> String {
    let (w, h) = (360.0, 90.0);
    let span = (to - from).num_days().max(1) as f64;
    let x = |d: NaiveDate| 4.0 + (w - 8.0) * (d - from).num_days() as f64 / span;
    let y = |s: u8| 4.0 + (h - 8.0) * (1.0 - f64::from(s) / 100.0);
    let mut svg = format!(
        r##"<svg class="score" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="daily health score">"##
    );
    // Bands: green from 70, red below 40 (the default model's thresholds).
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{w}" height="{g}" fill="#e7f5ea"/><rect x="0" y="{g}" width="{w}" height="{yl}" fill="#fdf6e3"/><rect x="0" y="{r}" width="{w}" height="{rh}" fill="#fbeaea"/>"##,
        g = y(70),
        yl = y(40) - y(70),
        r = y(40),
        rh = h - y(40),
    );
    let points: Vec<String> = days
        .iter()
        .map(|(d, s, _)| format!("{:.1},{:.1}", x(*d), y(*s)))
        .collect();
    if !points.is_empty() {
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="#1f4e79" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
    }
    for (d, s, provisional) in days {
        let fill = if *provisional { "#fff" } else { "#1f4e79" };
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{fill}" stroke="#1f4e79"><title>{d}: {s}</title></circle>"##,
            x(*d),
            y(*s)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Accounts per band per day, as stacked bars.
fn band_chart(per_day: &BTreeMap<NaiveDate, [usize; 4]>, accounts: usize) -> String {
    let (w, h) = (720.0, 160.0);
    let n = per_day.len().max(1) as f64;
    let bw = (w - 40.0) / n;
    let mut svg = format!(
        r##"<svg class="bands" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="accounts per band per day">"##
    );
    let colours = ["#2e7d32", "#f9a825", "#c62828", "#bbbbbb"];
    let scale = (h - 24.0) / accounts.max(1) as f64;
    for (i, (day, counts)) in per_day.iter().enumerate() {
        let mut top = h - 20.0;
        for (k, c) in counts.iter().enumerate() {
            let bh = *c as f64 * scale;
            top -= bh;
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{day}: {c} {}</title></rect>"##,
                30.0 + i as f64 * bw,
                top,
                (bw - 1.0).max(1.0),
                bh,
                colours[k],
                ["green", "yellow", "red", "provisional"][k]
            );
        }
        if i % 7 == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" font-size="10" fill="#555">{}</text>"##,
                30.0 + i as f64 * bw,
                h - 6.0,
                day.format("%m-%d")
            );
        }
    }
    let _ = write!(
        svg,
        r##"<text x="0" y="12" font-size="10" fill="#555">{accounts}</text><text x="0" y="{}" font-size="10" fill="#555">0</text></svg>"##,
        h - 20.0
    );
    svg
}

fn local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%m-%d %H:%M").to_string()
}

/// The events worth a line on an account's timeline (usage is summarised by the score).
fn event_line(e: &Value) -> Option<(String, String)> {
    let ty = e["type"].as_str()?;
    let p = &e["properties"];
    let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
    let who = e["contact_id"].as_str().unwrap_or_default();
    Some(match ty {
        "account_upserted" => (
            "account".into(),
            format!("{} plan, renewal {}", s("plan"), s("renewal_date")),
        ),
        "setup_step_completed" => ("onboarding step".into(), s("step")),
        "report_created" => ("report created".into(), who.into()),
        "admin_changed" => (
            "admin changed".into(),
            format!("{} → {who}", s("previous_contact_id")),
        ),
        "support_ticket_opened" => ("ticket opened".into(), s("severity")),
        "nps_response" => (
            "NPS".into(),
            format!("{} {}", p["score"], s("comment")).trim().into(),
        ),
        "customer_replied" => ("customer replied".into(), who.into()),
        "automation_resumed" => ("automation resumed".into(), String::new()),
        "deadline_set" => (
            "deadline set".into(),
            format!("{} due {}", s("title"), s("due_at")),
        ),
        "deadline_completed" => ("deadline met".into(), s("deadline_id")),
        "deadline_cancelled" => ("deadline cancelled".into(), s("deadline_id")),
        "churned" => ("churned".into(), String::new()),
        "unsubscribed" => ("unsubscribed".into(), format!("{who}: {}", s("category"))),
        _ => return None,
    })
}

/// Renders the report.
pub fn html(d: &DemoData) -> Result<String, minijinja::Error> {
    let p = &d.portfolio;
    let (from, to) = (p.from.date_naive(), p.to.date_naive());
    let sim = &d.sim;

    // Engagement per kind, flagged below the average open rate.
    let (all_delivered, all_opened) = d
        .engagement
        .iter()
        .fold((0, 0), |(a, b), r| (a + r.2, b + r.3));
    let average = if all_delivered == 0 {
        0.0
    } else {
        all_opened as f64 / all_delivered as f64
    };
    let kinds: Vec<KindRow> = d
        .engagement
        .iter()
        .map(
            |(kind, sent, delivered, opened, clicked, bounced)| KindRow {
                kind: kind.clone(),
                sent: *sent,
                delivered: *delivered,
                open_rate: pct(*opened, *delivered),
                click_rate: pct(*clicked, *delivered),
                bounced: *bounced,
                low: *delivered > 0 && (*opened as f64 / *delivered as f64) < average,
            },
        )
        .collect();

    // Bands per day and the latest band of each account.
    let mut per_day: BTreeMap<NaiveDate, [usize; 4]> = BTreeMap::new();
    let mut latest: BTreeMap<&str, (String, u8, Value)> = BTreeMap::new();
    for (account, snaps) in &d.snapshots {
        for s in snaps {
            let k = if s.provisional {
                3
            } else {
                match s.band.as_str() {
                    "green" => 0,
                    "yellow" => 1,
                    _ => 2,
                }
            };
            // Whole local days of the window only (the edges are scored for some zones).
            if (from..to).contains(&s.day) {
                per_day.entry(s.day).or_default()[k] += 1;
            }
        }
        if let Some(s) = snaps.last() {
            let detail = serde_json::from_str(&s.detail).unwrap_or(Value::Null);
            latest.insert(account.as_str(), (s.band.clone(), s.score, detail));
        }
    }
    let count_band = |b: &str| latest.values().filter(|(band, _, _)| band == b).count();

    // KPIs.
    let churned: Vec<&AccountCard> = p
        .accounts
        .iter()
        .filter(|a| {
            p.events
                .iter()
                .any(|e| e["type"] == "churned" && e["account_id"] == a.account_id.as_str())
        })
        .collect();
    let arr: f64 = p.accounts.iter().map(|a| f64::from(a.arr)).sum();
    let average_arr = arr / p.accounts.len().max(1) as f64;
    let window_days = (to - from).num_days().max(1) as f64;
    let annual_churn = churned.len() as f64 / p.accounts.len().max(1) as f64 * 365.0 / window_days;
    let upsells = sim
        .deliveries
        .iter()
        .filter(|e| e.kind.as_str() == "upsell_offer" && e.status.as_str() == "sent")
        .count();
    let k = &d.kpis;
    let days = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1} days"));
    let tiles = vec![
        Tile {
            label: "Accounts",
            value: p.accounts.len().to_string(),
            note: format!("{} ARR in all", money(arr)),
        },
        Tile {
            label: "Onboarding completed",
            value: pct(k.completed as u64, k.cohort as u64),
            note: format!("{} of {} new customers", k.completed, k.cohort),
        },
        Tile {
            label: "Time to first value",
            value: days(k.median_days_to_first_value),
            note: format!("median, {} with a first report", k.first_value),
        },
        Tile {
            label: "Active rate",
            value: pct(k.active as u64, k.cohort as u64),
            note: format!("new customers with {}+ key-feature uses", k.active_uses),
        },
        Tile {
            label: "At risk",
            value: count_band("red").to_string(),
            note: format!("red today; {} yellow", count_band("yellow")),
        },
        Tile {
            label: "Churned",
            value: churned.len().to_string(),
            note: format!("{:.0}% a year at this pace", annual_churn * 100.0),
        },
        Tile {
            label: "Upsell offers",
            value: upsells.to_string(),
            note: "sent near renewal".into(),
        },
        Tile {
            label: "LTV",
            value: if annual_churn > 0.0 {
                money(average_arr / annual_churn)
            } else {
                "–".into()
            },
            note: format!("average ARR {} ÷ annual churn", money(average_arr)),
        },
    ];

    // Deliveries by kind, stage and status; blocked by reason.
    let mut by_kind: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut blocked: BTreeMap<String, usize> = BTreeMap::new();
    for e in &sim.deliveries {
        let stage = e.stage.map(|s| s.to_string()).unwrap_or_default();
        *by_kind
            .entry((e.kind.to_string(), stage, e.status.as_str().to_string()))
            .or_default() += 1;
        if e.status.as_str() == "blocked" {
            *blocked
                .entry(e.reason.clone().unwrap_or_default())
                .or_default() += 1;
        }
    }
    let by_kind: Vec<(String, String, String, usize)> = by_kind
        .into_iter()
        .map(|((a, b, c), n)| (a, b, c, n))
        .collect();

    // Accounts: events, messages and scores on one timeline, in the account's local time.
    let mut previews: BTreeMap<(String, String), (&str, &str)> = BTreeMap::new();
    let mut csm_copies: BTreeMap<(DateTime<Utc>, String), &str> = BTreeMap::new();
    for m in &sim.messages {
        match (&m.account_id, &m.nudge_id) {
            (Some(a), Some(n)) => {
                previews.insert((a.clone(), n.clone()), (&m.html, &m.text));
            }
            _ => {
                csm_copies.insert((m.at, m.subject.clone()), &m.text);
            }
        }
    }
    let accounts: Vec<AccountView> = p
        .accounts
        .iter()
        .map(|card| {
            let tz: Tz = card.timezone.parse().unwrap_or(chrono_tz::UTC);
            let mut items: Vec<(DateTime<Utc>, Item)> = Vec::new();
            for e in p
                .events
                .iter()
                .filter(|e| e["account_id"] == card.account_id.as_str())
            {
                let Some((title, detail)) = event_line(e) else {
                    continue;
                };
                let Some(at) = e["occurred_at"]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                else {
                    continue;
                };
                let at = at.with_timezone(&Utc);
                if at < p.from - chrono::Duration::days(1) && title != "account" {
                    continue;
                }
                items.push((
                    at,
                    Item {
                        at: local(at, tz),
                        what: "event".into(),
                        title,
                        detail,
                        html: String::new(),
                        text: String::new(),
                    },
                ));
            }
            let mut messages = 0;
            for e in sim
                .deliveries
                .iter()
                .filter(|e| e.account_id == card.account_id)
            {
                messages += 1;
                let (html, text) = previews
                    .get(&(e.account_id.clone(), e.nudge_id.clone()))
                    .copied()
                    .or_else(|| csm_copies.get(&(e.at, e.subject.clone())).map(|t| ("", *t)))
                    .unwrap_or(("", ""));
                let stage = e.stage.map(|s| format!(" · {s}")).unwrap_or_default();
                let to = match e.contact_id.as_deref() {
                    Some(c) => c.to_string(),
                    None => "CSM".into(),
                };
                items.push((
                    e.at,
                    Item {
                        at: local(e.at, tz),
                        what: e.status.as_str().to_string(),
                        title: format!("{}{stage} → {to}", e.kind),
                        detail: match &e.reason {
                            Some(r) => format!("{} ({r})", e.subject),
                            None => e.subject.clone(),
                        },
                        html: html.to_string(),
                        text: text.to_string(),
                    },
                ));
            }
            items.sort_by_key(|(at, _)| *at);
            let snaps = d
                .snapshots
                .get(&card.account_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let points: Vec<(NaiveDate, u8, bool)> = snaps
                .iter()
                .map(|s| (s.day, s.score, s.provisional))
                .collect();
            let (band, score, detail) = latest
                .get(card.account_id.as_str())
                .cloned()
                .unwrap_or_default();
            let drivers = detail["families"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .map(|f| {
                            (
                                f["family"].as_str().unwrap_or_default().to_string(),
                                format!("{:+.1}", f["points"].as_f64().unwrap_or_default()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let risks = detail["drivers"]
                .as_array()
                .map(|ds| {
                    ds.iter()
                        .filter(|d| d["triggered"].as_bool() == Some(true))
                        .filter_map(|d| d["factor"].as_str().map(|s| s.replace('_', " ")))
                        .collect()
                })
                .unwrap_or_default();
            AccountView {
                card: card.clone(),
                tier: detail["tier"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('_', " "),
                band: if band.is_empty() { "none".into() } else { band },
                score: if snaps.is_empty() {
                    "–".into()
                } else {
                    score.to_string()
                },
                chart: score_chart(&points, from, to),
                drivers,
                risks,
                items: items.into_iter().map(|(_, i)| i).collect(),
                messages,
            }
        })
        .collect();

    let personas: Vec<(String, usize)> = crate::portfolio::personas(p)
        .into_iter()
        .map(|(p, n)| (p.label().to_string(), n))
        .collect();
    let moves: Vec<(String, usize)> = band_moves(d).into_iter().collect();
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.add_template("report.html", TEMPLATE)?;
    env.get_template("report.html")?.render(context! {
        title => format!("Nudge demo: {} accounts, {} to {}", p.accounts.len(), from, to),
        from, to,
        personas,
        tiles,
        funnel => k.funnel,
        kinds,
        average => format!("{:.0}%", average * 100.0),
        bands => band_chart(&per_day, p.accounts.len()),
        moves,
        by_kind,
        blocked,
        feedback => sim.feedback,
        runs => sim.runs,
        events_read => sim.events_read,
        ingest_requests => sim.ingest_requests,
        feedback_invocations => sim.feedback_invocations,
        accepted => sim.accepted,
        rejected => sim.rejected,
        deliveries => sim.deliveries.len(),
        accounts,
        deadlines => d.deadlines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_chart_is_numbers_only_and_marks_provisional_days() {
        let d = |n| NaiveDate::from_ymd_opt(2026, 11, n).unwrap();
        let svg = score_chart(&[(d(1), 80, true), (d(2), 35, false)], d(1), d(11));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r##"fill="#fff""##), "{svg}");
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(1_234_567.4), "$1,234,567");
        assert_eq!(money(900.0), "$900");
    }
}
