//! The message of a nudge: who it goes to (resolved from the store when it leaves), the
//! variables its template sees, and the email handed to the `Mailer`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use super::unsubscribe;
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
    for (k, v) in extra(nudge, &recipient.context, now) {
        put(&k, v);
    }
    if nudge.audience() == Audience::Customer
        && let Some(c) = &recipient.contact
    {
        let token = unsubscribe::sign(
            deps.secret.as_bytes(),
            &nudge.account_id,
            &c.contact_id,
            nudge.kind.category(),
        );
        vars.insert(
            "unsubscribe_url".into(),
            json!(unsubscribe::link(&deps.config.public_base_url, &token)),
        );
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
    let mut tags = vec![
        ("nudge_kind".to_string(), nudge.kind.as_str().to_string()),
        ("variant".to_string(), sanitize_tag(&nudge.variant)),
    ];
    if let Some(r) = nudge_ref_tag(&nudge.account_id, &nudge.nudge_id) {
        tags.push(("nref".into(), r));
    }
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
    use super::*;

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
