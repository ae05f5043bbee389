//! Message templates (ja, en), compiled into the binary.
//!
//! Each kind has `<locale>/<kind>.txt` whose first line is the subject and the rest the plain
//! text body; customer-facing kinds also have `<locale>/<kind>.html`. `.html` templates are
//! HTML auto-escaped (a customer named `<b>Eve</b>` stays text), `.txt` templates are not.
//! Every customer email includes the `_footer` with `{{ unsubscribe_url }}`. A customer email
//! whose nudge has a string `step` in its vars (and a resolved contact) also gets `done_url`,
//! the signed one-click "I've done this" link for that onboarding step
//! (`delivery/done_link.rs`); it is only there for a step name the event contract accepts.
//! `pages/` holds the HTML pages served over HTTP (unsubscribe, done links), on
//! `pages/_layout.html`.
//! `<locale>/_labels.txt` holds the words a locale's templates share (labels keyed by the names
//! a planner writes into vars, with a `*_any` fallback), `{% import %}`-ed by a kind's `.txt`
//! and `.html` alike. Filters: `thousands` (`48000.0` → "48,000") and `long_date` (an ISO date
//! in the template's locale).
//!
//! Content rules: one point and one action per message; say which work gets
//! easier; never scold; leave the customer room to choose their moment.
//! A call to action is `{{ link or app_url }}` inside `{% if link or app_url %}`: with neither,
//! the message reads without a link rather than with an empty one.
//! A variant other than "a" is available to templates as `variant` (follow-up resends use "b").
//! A customer kind's copy for the CSM (`for_csm: true` in its vars, e.g. a stuck account's
//! `onboarding_progress`) renders its `.txt` only, which branches on `for_csm`.

use std::sync::OnceLock;

use minijinja::value::ValueKind;
use minijinja::{Environment, State, Value};
use thiserror::Error;

use crate::domain::{Audience, Locale, NudgeKind, Stage};

#[derive(Debug, Error, Clone, PartialEq)]
pub enum TemplateError {
    #[error("no template for {kind} in locale {locale}")]
    Missing { kind: String, locale: String },
    #[error("template {name} failed to render: {message}")]
    Render { name: String, message: String },
}

/// A rendered message. `html` is empty for SNS (CSM) messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

const SOURCES: &[(&str, &str)] = templates!(
    "en/_labels.txt",
    "ja/_labels.txt",
    "en/_footer.txt",
    "en/_footer.html",
    "en/_header.html",
    "ja/_footer.txt",
    "ja/_footer.html",
    "ja/_header.html",
    "en/deadline_reminder.txt",
    "en/deadline_reminder.html",
    "ja/deadline_reminder.txt",
    "ja/deadline_reminder.html",
    "en/onboarding_welcome.txt",
    "en/onboarding_welcome.html",
    "ja/onboarding_welcome.txt",
    "ja/onboarding_welcome.html",
    "en/milestone.txt",
    "en/milestone.html",
    "ja/milestone.txt",
    "ja/milestone.html",
    "en/onboarding_progress.txt",
    "en/onboarding_progress.html",
    "ja/onboarding_progress.txt",
    "ja/onboarding_progress.html",
    "en/risk_nudge.txt",
    "en/risk_nudge.html",
    "ja/risk_nudge.txt",
    "ja/risk_nudge.html",
    "en/admin_welcome.txt",
    "en/admin_welcome.html",
    "ja/admin_welcome.txt",
    "ja/admin_welcome.html",
    "en/upsell_offer.txt",
    "en/upsell_offer.html",
    "ja/upsell_offer.txt",
    "ja/upsell_offer.html",
    "en/health_alert.txt",
    "ja/health_alert.txt",
    "en/csm_task.txt",
    "ja/csm_task.txt",
    "en/automation_paused.txt",
    "ja/automation_paused.txt",
    "pages/_layout.html",
    "pages/unsubscribe_confirm.html",
    "pages/unsubscribe_done.html",
    "pages/unsubscribe_invalid.html",
    "pages/unsubscribe_retry.html",
    "pages/method_not_allowed.html",
    "pages/done_confirm.html",
    "pages/done_recorded.html",
    "pages/done_invalid.html",
);

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // The default callback escapes by extension: .html escaped, .txt not. The escaper is
        // minijinja's own (it also writes `/` as `&#x2f;`, which browsers read back as `/`).
        env.set_keep_trailing_newline(true);
        env.add_filter("thousands", thousands);
        env.add_filter("long_date", long_date);
        for (name, src) in SOURCES {
            // Sources are compiled in and covered by tests; a broken one is a build defect,
            // reported at render time as `TemplateError::Missing`/`Render` rather than a panic.
            if let Err(e) = env.add_template(name, src) {
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        env
    })
}

/// `{{ arr | thousands }}`: a number as a whole with thousands separators ("48,000"), so ARR and
/// points read at a glance (JSON carries ARR as `48000.0`); anything else as it is.
fn thousands(v: Value) -> String {
    match f64::try_from(v.clone()) {
        Ok(n) if v.kind() == ValueKind::Number && n.is_finite() => thousands_separated(n),
        _ => v.to_string(),
    }
}

/// `n` rounded to a whole number with thousands separators: "48,000", "-1,234".
pub fn thousands_separated(n: f64) -> String {
    let n = n.round();
    let digits = format!("{:.0}", n.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `{{ renewal_date | long_date }}`: an ISO date (`2027-09-30`) the way the template's `locale`
/// writes it (en "30 Sep 2027", ja "2027年9月30日"); anything else as it is.
fn long_date(state: &State, v: Value) -> String {
    let s = v.to_string();
    let Ok(day) = chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d") else {
        return s;
    };
    match state.lookup("locale").as_ref().and_then(Value::as_str) {
        Some("ja") => day.format("%Y年%-m月%-d日").to_string(),
        _ => day.format("%-d %b %Y").to_string(),
    }
}

/// Renders one of the HTTP pages, `pages/<name>.html` (HTML auto-escaped like the emails).
pub fn render_page(name: &str, ctx: Value) -> Result<String, TemplateError> {
    let full = format!("pages/{name}.html");
    env()
        .get_template(&full)
        .and_then(|t| t.render(ctx))
        .map_err(|e| TemplateError::Render {
            name: full,
            message: e.to_string(),
        })
}

/// Renders one message. `vars` must be a JSON object; `kind`, `stage`, `variant` and `locale`
/// are added to it.
pub fn render(
    kind: NudgeKind,
    stage: Option<Stage>,
    variant: &str,
    locale: Locale,
    vars: &serde_json::Value,
) -> Result<Rendered, TemplateError> {
    let lang = locale.as_str();
    let env = env();
    let txt_name = format!("{lang}/{}.txt", kind.as_str());
    let txt = env
        .get_template(&txt_name)
        .map_err(|_| TemplateError::Missing {
            kind: kind.as_str().into(),
            locale: lang.into(),
        })?;
    let mut ctx = match vars {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    // Top-level strings are one-liners (names, titles): a line break in one would split the
    // subject line from the body. Multi-line content goes in `detail`.
    for (k, v) in ctx.iter_mut() {
        if let serde_json::Value::String(s) = v
            && k != "detail"
            && s.contains(['\r', '\n'])
        {
            *s = s.replace(['\r', '\n'], " ");
        }
    }
    ctx.insert("kind".into(), kind.as_str().into());
    ctx.insert(
        "stage".into(),
        stage
            .map(|s| serde_json::Value::from(s.as_str()))
            .unwrap_or_default(),
    );
    ctx.insert("variant".into(), variant.into());
    ctx.insert("locale".into(), lang.into());
    // A customer kind's copy for the CSM (`Nudge::for_csm`, marked `for_csm` in its vars) goes
    // over SNS: its `.txt` writes the CSM's message, and there is no HTML to render.
    let csm_copy = ctx.get("for_csm") == Some(&serde_json::Value::Bool(true));
    let ctx = Value::from_serialize(&ctx);
    let render_err = |name: &str, e: minijinja::Error| TemplateError::Render {
        name: name.to_string(),
        message: e.to_string(),
    };
    let full = txt.render(&ctx).map_err(|e| render_err(&txt_name, e))?;
    let (subject, text) = full.split_once('\n').unwrap_or((full.as_str(), ""));
    let subject: String = subject
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string();
    let text = text.trim_start_matches('\n').to_string();
    let html = if kind.audience() == Audience::Customer && !csm_copy {
        let html_name = format!("{lang}/{}.html", kind.as_str());
        let t = env
            .get_template(&html_name)
            .map_err(|_| TemplateError::Missing {
                kind: kind.as_str().into(),
                locale: lang.into(),
            })?;
        t.render(&ctx).map_err(|e| render_err(&html_name, e))?
    } else {
        String::new()
    };
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

#[cfg(test)]
mod tests;
