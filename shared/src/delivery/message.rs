//! The message of a nudge: who it goes to (resolved from the store when it leaves), the
//! variables its template sees, and the email handed to the `Mailer`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use tracing::warn;

use super::{done_link, unsubscribe};
use crate::Deps;
use crate::channels::{OutgoingEmail, mime};
use crate::domain::{Audience, ExtraVars, Locale, Nudge, RecipientContext};
use crate::store::{AccountRecord, ContactRecord};
use crate::templates::Rendered;

/// Who a nudge goes to, as resolved from the store.
pub(super) struct Recipient {
    pub contact: Option<ContactRecord>,
    /// Email address, or topic ARN for CSM messages; `None` = nobody to send to.
    pub to: Option<String>,
    pub context: RecipientContext,
}

pub(super) fn resolve_recipient(
    deps: &Deps,
    nudge: &Nudge,
    account: Option<&AccountRecord>,
    contact: Option<ContactRecord>,
) -> Recipient {
    let profile = account.and_then(|a| a.profile.as_ref());
    let contact_profile = contact.as_ref().and_then(|c| c.profile.as_ref());
    let locale = contact_profile
        .and_then(|p| p.locale)
        .or(profile.map(|p| p.locale))
        .unwrap_or(Locale::En);
    let tz = contact_profile
        .and_then(|p| p.timezone)
        .or(profile.map(|p| p.timezone))
        .unwrap_or(Tz::UTC);
    let to = match nudge.audience() {
        Audience::Customer => contact_profile
            .map(|p| p.email.clone())
            .filter(|e| !e.trim().is_empty()),
        Audience::Csm => deps.config.csm_topic_arn.clone(),
    };
    // CSM messages are written in the account's language (the CSM's working language).
    let locale = match nudge.audience() {
        Audience::Csm => profile.map(|p| p.locale).unwrap_or(locale),
        Audience::Customer => locale,
    };
    Recipient {
        contact,
        to,
        context: RecipientContext { locale, tz },
    }
}

pub(super) fn template_vars(
    deps: &Deps,
    extra: ExtraVars,
    nudge: &Nudge,
    account: Option<&AccountRecord>,
    recipient: &Recipient,
    now: DateTime<Utc>,
) -> Value {
    let mut vars: Map<String, Value> = match &nudge.vars {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let profile = account.and_then(|a| a.profile.as_ref());
    let mut put = |k: &str, v: Value| {
        vars.entry(k.to_string()).or_insert(v);
    };
    if let Some(p) = profile {
        put("account_name", json!(p.name));
        put("plan", json!(p.plan));
        put("renewal_date", json!(p.renewal_date.to_string()));
        if let Some(t) = p.tier {
            put("tier", serde_json::to_value(t).unwrap_or_default());
        }
        if let Some(csm) = &p.csm {
            put("csm_name", json!(csm.name));
            // Onboarding emails offer the CSM's help with the next step: whom to write to.
            put("csm_email", json!(csm.email));
            // A message the planner marked as the CSM's own (`from_csm`): replies reach them.
            if nudge.vars.get("from_csm") == Some(&Value::Bool(true)) {
                put("reply_to", json!(format!("{} <{}>", csm.name, csm.email)));
            }
        }
    } else {
        put("account_name", json!(nudge.account_id));
    }
    if let Some(company) = &deps.config.company_name {
        put("company_name", json!(company));
    }
    if let Some(product) = &deps.config.product_name {
        put("product_name", json!(product));
    }
    // The fallback call to action (`{{ link or app_url }}`): a nudge's own `link` wins.
    if let Some(app) = &deps.config.app_url {
        put("app_url", json!(app));
    }
    if let Some(cp) = recipient.contact.as_ref().and_then(|c| c.profile.as_ref()) {
        put("contact_name", json!(cp.name));
    }
    // A stuck account's CSM copy (`milestones::program::check_nudges`) says how long the account
    // has gone without a step: whole days from `last_step_at` to the send.
    if let Some(at) = nudge
        .vars
        .get("last_step_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    {
        put(
            "days_since_last_step",
            json!((now - at.with_timezone(&Utc)).num_days().max(0)),
        );
    }
    for (k, v) in extra(nudge, &recipient.context, now) {
        put(&k, v);
    }
    if nudge.audience() == Audience::Customer
        && let Some(c) = &recipient.contact
    {
        // Without a link key there is no unsubscribe link, and the send path refuses to send
        // a customer email without one.
        match unsubscribe::sign(
            &deps.keys.links,
            &nudge.account_id,
            &c.contact_id,
            nudge.kind.category(),
        ) {
            Ok(token) => {
                vars.insert(
                    "unsubscribe_url".into(),
                    json!(unsubscribe::link(&deps.config.public_base_url, &token)),
                );
            }
            Err(e) => {
                warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, error = %e, "no unsubscribe link");
            }
        }
        if let Some(step) = nudge.vars.get("step").and_then(Value::as_str) {
            let target = done_link::DoneTarget {
                account_id: nudge.account_id.clone(),
                contact_id: c.contact_id.clone(),
                step: step.to_string(),
                nudge_id: nudge.nudge_id.clone(),
            };
            // A step the event contract would refuse gets no link: following it could record
            // nothing. The email still goes out without the button.
            match done_link::sign(&deps.keys.links, &target) {
                Ok(token) => {
                    vars.insert(
                        "done_url".into(),
                        json!(done_link::link(&deps.config.public_base_url, &token)),
                    );
                }
                Err(e) => {
                    warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, error = %e, "no done link");
                }
            }
        }
    }
    Value::Object(vars)
}

/// SES tag values allow only `[A-Za-z0-9_-.@]`-ish characters: the nudge reference is hex.
pub fn nudge_ref_tag(account_id: &str, nudge_id: &str) -> Option<String> {
    let json = serde_json::to_string(&[account_id, nudge_id]).ok()?;
    let h = hex::encode(json.as_bytes());
    (h.len() <= 256).then_some(h)
}

/// Decodes [`nudge_ref_tag`].
pub fn parse_nudge_ref_tag(tag: &str) -> Option<(String, String)> {
    let bytes = hex::decode(tag).ok()?;
    let v: Vec<String> = serde_json::from_slice(&bytes).ok()?;
    match v.as_slice() {
        [a, n] => Some((a.clone(), n.clone())),
        _ => None,
    }
}

/// The tags every message carries (SES email tags, SNS message attributes): the nudge's kind,
/// variant and reference, which the SES feedback and the simulation read back.
pub(super) fn message_tags(nudge: &Nudge) -> Vec<(String, String)> {
    let mut tags = vec![
        ("nudge_kind".to_string(), nudge.kind.as_str().to_string()),
        ("variant".to_string(), sanitize_tag(&nudge.variant)),
    ];
    if let Some(r) = nudge_ref_tag(&nudge.account_id, &nudge.nudge_id) {
        tags.push(("nref".into(), r));
    }
    tags
}

pub(super) fn outgoing_email(
    deps: &Deps,
    nudge: &Nudge,
    to: &str,
    rendered: &Rendered,
    vars: &Value,
    now: DateTime<Utc>,
) -> OutgoingEmail {
    let url = vars
        .get("unsubscribe_url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tags = message_tags(nudge);
    OutgoingEmail {
        from: deps.config.sender.clone(),
        to: to.to_string(),
        reply_to: vars
            .get("reply_to")
            .and_then(Value::as_str)
            .map(str::to_string),
        subject: rendered.subject.clone(),
        text: rendered.text.clone(),
        html: rendered.html.clone(),
        headers: unsubscribe::headers(url),
        tags,
        date: now,
        message_id: mime::message_id(&nudge.account_id, &nudge.nudge_id, &deps.config.sender),
    }
}

fn sanitize_tag(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::domain::{NudgeKind, no_extra_vars};
    use crate::events::{ContactProfile, Role};

    fn link_keys() -> crate::deps::LinkKeys {
        crate::deps::LinkKeys::parse(
            r#"{"current":"m1","m1":"message-test-link-key-0123456789abcdef"}"#,
        )
        .unwrap()
    }

    fn deps() -> Deps {
        use crate::channels::ses::SesMailer;
        use crate::channels::sns::SnsNotifier;
        // Never called: template variables need the configuration and the secret only.
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let config = crate::config::Config::from_lookup(|k| match k {
            "NUDGE_TABLE" => Some("t".into()),
            "NUDGE_PUBLIC_BASE_URL" => Some("https://nudge.example".into()),
            _ => None,
        })
        .expect("config");
        Deps::new(
            config,
            Arc::new(crate::store::memory::MemoryStore::new()),
            Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(&sdk), None)),
            Arc::new(SnsNotifier::new(aws_sdk_sns::Client::new(&sdk))),
            crate::deps::Keys {
                links: link_keys(),
                ..Default::default()
            },
        )
    }

    fn recipient(contact: bool) -> Recipient {
        Recipient {
            contact: contact.then(|| ContactRecord {
                account_id: "acme".into(),
                contact_id: "u1".into(),
                profile: Some(ContactProfile {
                    email: "u1@acme.example".into(),
                    phone: None,
                    name: "Ann".into(),
                    role: Role::Admin,
                    timezone: None,
                    locale: None,
                }),
                profile_at: None,
                unsubscribed: Default::default(),
            }),
            to: Some("u1@acme.example".into()),
            context: RecipientContext {
                locale: Locale::En,
                tz: Tz::UTC,
            },
        }
    }

    fn vars_of(kind: NudgeKind, vars: Value, contact: bool) -> Value {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let nudge =
            Nudge::new("ob:1", "acme", Some("u1".into()), kind, now, "health", now).with_vars(vars);
        template_vars(
            &deps(),
            no_extra_vars,
            &nudge,
            None,
            &recipient(contact),
            now,
        )
    }

    #[test]
    fn a_customer_email_about_a_step_carries_a_done_link_for_its_contact_and_nudge() {
        let vars = vars_of(
            NudgeKind::OnboardingProgress,
            json!({ "step": "import_data", "done_url": "https://evil.example" }),
            true,
        );
        let url = vars["done_url"].as_str().unwrap();
        let token = url
            .strip_prefix("https://nudge.example/steps/done?t=")
            .unwrap_or_else(|| panic!("{url}"));
        assert_eq!(
            done_link::verify(&link_keys(), token),
            Ok(done_link::DoneTarget {
                account_id: "acme".into(),
                contact_id: "u1".into(),
                step: "import_data".into(),
                nudge_id: "ob:1".into(),
            })
        );
    }

    #[test]
    fn no_done_link_without_a_step_a_contact_a_customer_or_a_valid_step_name() {
        let none = |kind, vars, contact| vars_of(kind, vars, contact).get("done_url").cloned();
        assert_eq!(none(NudgeKind::Milestone, json!({}), true), None);
        assert_eq!(none(NudgeKind::Milestone, json!({ "step": 3 }), true), None);
        assert_eq!(
            none(
                NudgeKind::OnboardingProgress,
                json!({ "step": "import_data" }),
                false
            ),
            None
        );
        assert_eq!(
            none(
                NudgeKind::HealthAlert,
                json!({ "step": "import_data" }),
                true
            ),
            None
        );
        assert_eq!(
            none(
                NudgeKind::OnboardingProgress,
                json!({ "step": "<b>x</b>" }),
                true
            ),
            None
        );
    }

    #[test]
    fn a_last_step_time_gives_the_whole_days_since_it() {
        // `vars_of` sends at 2026-11-20T00:00Z.
        let days = |last: Value| {
            let v = vars_of(
                NudgeKind::OnboardingProgress,
                json!({ "for_csm": true, "last_step_at": last }),
                false,
            );
            v.get("days_since_last_step").cloned()
        };
        assert_eq!(days(json!("2026-11-10T09:30:00+09:00")), Some(json!(9)));
        assert_eq!(days(json!("2026-11-19T00:00:01Z")), Some(json!(0)));
        assert_eq!(days(json!("2026-11-21T00:00:00Z")), Some(json!(0)));
        assert_eq!(days(json!(null)), None);
        assert_eq!(days(json!("last week")), None);
    }

    #[test]
    fn nudge_ref_tags_round_trip() {
        let t = nudge_ref_tag("acme", "dl:d1:final").unwrap();
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            parse_nudge_ref_tag(&t),
            Some(("acme".into(), "dl:d1:final".into()))
        );
    }
}
