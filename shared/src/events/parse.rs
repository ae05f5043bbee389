//! Hand-written validation over the body deserialised once, borrowing from it ([`json`]), so
//! every rejection names its field (`properties.score: expected an integer 0-10, got string`)
//! instead of serde's positional messages. One bad event never affects its neighbours.

mod json;

use chrono::{DateTime, Datelike, FixedOffset, Months, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;

use json::{Json, Object};

use super::{
    AccountProfile, ContactProfile, Csm, DeadlineSet, EnvelopeError, Event, EventError,
    EventPayload, EventType, Locale, MAX_BODY_BYTES, MAX_EVENTS, Severity, Tier,
};

const ID_MAX: usize = 128;
const SLUG_MAX: usize = 64;
const TEXT_MAX: usize = 256;
const COMMENT_MAX: usize = 2000;
const EMAIL_MAX: usize = 254;
const LINK_MAX: usize = 2048;
const YEAR_MIN: i32 = 2000;
const YEAR_MAX: i32 = 2100;
/// Clock skew we tolerate on `occurred_at` ahead of the receive time. Minutes, not hours: an
/// event stamped a day ahead would make every real event of that day look stale (profiles and
/// account changes are last-writer-wins by `occurred_at`).
const FUTURE_SLACK: TimeDelta = TimeDelta::minutes(15);
/// How far ahead a deadline may be set.
const DUE_AT_MAX_MONTHS: u32 = 60;

const EXAMPLE_TS: &str = "2026-11-20T09:15:00+09:00";

/// Parse the raw HTTP body. Size check first (before JSON parsing), then envelope, then each
/// event independently: one bad event never affects its neighbours. `now` is used to reject
/// absurd dates.
pub fn parse_batch(
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Vec<Result<Event, EventError>>, EnvelopeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(EnvelopeError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    // Some Windows clients prepend a UTF-8 byte-order mark; serde_json refuses it.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(EnvelopeError::Malformed(
            "request body is empty; expected a JSON object like {\"events\": [...]}".into(),
        ));
    }
    let root: Json = serde_json::from_slice(body).map_err(|e| {
        EnvelopeError::Malformed(format!(
            "body is not valid JSON ({e}); expected a JSON object like {{\"events\": [...]}}"
        ))
    })?;
    let Json::Object(root) = root else {
        return Err(EnvelopeError::Malformed(format!(
            "expected a JSON object like {{\"events\": [...]}}, got {}",
            root.kind()
        )));
    };
    let events = match root.get("events") {
        None => {
            return Err(EnvelopeError::Malformed(
                "missing \"events\"; expected a JSON object like {\"events\": [...]}".into(),
            ));
        }
        Some(Json::Array(events)) => events,
        Some(other) => {
            return Err(EnvelopeError::Malformed(format!(
                "\"events\" must be an array, got {}",
                other.kind()
            )));
        }
    };
    if events.len() > MAX_EVENTS {
        return Err(EnvelopeError::TooManyEvents {
            count: events.len(),
            limit: MAX_EVENTS,
        });
    }
    Ok(events.iter().map(|v| parse_json_event(v, now)).collect())
}

/// Parse/validate one event from a `serde_json::Value` (the simulator reading JSONL, tests),
/// exactly as [`parse_batch`] does each of its events.
pub fn parse_event(value: &Value, now: DateTime<Utc>) -> Result<Event, EventError> {
    // Infallible for a `Value` (every value has a `Json`); the error arm only keeps it total.
    let json = Json::deserialize(value).map_err(|e| EventError::new("event", e.to_string()))?;
    parse_json_event(&json, now)
}

fn parse_json_event(value: &Json<'_>, now: DateTime<Utc>) -> Result<Event, EventError> {
    let Json::Object(obj) = value else {
        return Err(EventError::new(
            "event",
            format!("expected a JSON object, got {}", value.kind()),
        ));
    };
    let top = Fields::new(obj, "");
    let event_id = top.req_id("event_id")?;
    let account_id = top.req_id("account_id")?;
    let ty = parse_type(&top)?;
    let contact_id = top.opt_id("contact_id")?;
    if contact_id.is_none() && ty.requires_contact() {
        return Err(EventError::new(
            "contact_id",
            format!("required for {ty} events"),
        ));
    }
    let occurred_at = top.req_timestamp("occurred_at")?;
    if let Some(limit) = now.checked_add_signed(FUTURE_SLACK)
        && occurred_at.with_timezone(&Utc) > limit
    {
        return Err(EventError::new(
            "occurred_at",
            format!(
                "is in the future (more than 15 minutes after {}, the time it was received)",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    let empty = Object::default();
    let props = match obj.get("properties") {
        None | Some(Json::Null) => &empty,
        Some(Json::Object(m)) => m,
        Some(other) => {
            return Err(EventError::new(
                "properties",
                format!("expected an object, got {}", other.kind()),
            ));
        }
    };
    let payload = parse_payload(ty, &Fields::new(props, "properties."), now)?;
    Ok(Event {
        event_id,
        account_id,
        contact_id,
        occurred_at,
        payload,
    })
}

fn parse_type(top: &Fields<'_>) -> Result<EventType, EventError> {
    let s = top.req_str("type")?;
    s.parse().map_err(|_| {
        let valid: Vec<&str> = EventType::ALL.iter().map(EventType::as_str).collect();
        top.err(
            "type",
            format!(
                "unknown type {}; valid types: {}",
                preview(s),
                valid.join(", ")
            ),
        )
    })
}

fn parse_payload(
    ty: EventType,
    p: &Fields<'_>,
    now: DateTime<Utc>,
) -> Result<EventPayload, EventError> {
    Ok(match ty {
        EventType::AccountUpserted => EventPayload::AccountUpserted(parse_account(p)?),
        EventType::ContactUpserted => EventPayload::ContactUpserted(ContactProfile {
            email: p.req_email("email")?,
            phone: p.opt_phone("phone")?,
            name: p.req_text("name", TEXT_MAX)?,
            role: p.req_enum("role", "admin, executive, user")?,
            timezone: p.opt_tz("timezone")?,
            locale: p.opt_enum::<Locale>("locale", "ja, en (e.g. ja-JP)")?,
        }),
        EventType::Login => EventPayload::Login,
        EventType::FeatureUsed => EventPayload::FeatureUsed {
            feature: p.req_slug("feature")?,
        },
        EventType::ReportCreated => EventPayload::ReportCreated,
        EventType::SetupStepCompleted => EventPayload::SetupStepCompleted {
            step: p.req_slug("step")?,
        },
        EventType::AdminChanged => EventPayload::AdminChanged {
            previous_contact_id: p.opt_id("previous_contact_id")?,
        },
        EventType::SupportTicketOpened => EventPayload::SupportTicketOpened {
            ticket_id: p.req_id("ticket_id")?,
            severity: p.req_enum("severity", SEVERITIES)?,
        },
        EventType::SupportTicketClosed => EventPayload::SupportTicketClosed {
            ticket_id: p.req_id("ticket_id")?,
            severity: p.opt_enum::<Severity>("severity", SEVERITIES)?,
        },
        EventType::NpsResponse => EventPayload::NpsResponse {
            score: p.req_score("score")?,
            comment: p.opt_comment("comment")?,
        },
        EventType::CustomerReplied => EventPayload::CustomerReplied,
        EventType::AutomationResumed => EventPayload::AutomationResumed,
        EventType::DeadlineSet => EventPayload::DeadlineSet(parse_deadline(p, now)?),
        EventType::DeadlineCompleted => EventPayload::DeadlineCompleted {
            deadline_id: p.req_id("deadline_id")?,
        },
        EventType::DeadlineCancelled => EventPayload::DeadlineCancelled {
            deadline_id: p.req_id("deadline_id")?,
        },
        EventType::ContractRenewed => EventPayload::ContractRenewed {
            renewal_date: p.opt_date("renewal_date")?,
        },
        EventType::Churned => EventPayload::Churned,
        EventType::Unsubscribed => EventPayload::Unsubscribed {
            category: p.opt_with("category", check_category)?,
        },
    })
}

const SEVERITIES: &str = "low, medium, high, urgent";

fn parse_account(p: &Fields<'_>) -> Result<AccountProfile, EventError> {
    let name = p.req_text("name", TEXT_MAX)?;
    let plan = p.req_text("plan", TEXT_MAX)?;
    let industry = p.req_text("industry", TEXT_MAX)?;
    let tier = p.opt_enum::<Tier>("tier", "high_touch, low_touch, tech_touch")?;
    let csm = match p.get("csm") {
        None => None,
        Some(Json::Object(m)) => {
            let c = Fields::new(m, "properties.csm.");
            Some(Csm {
                name: c.req_text("name", TEXT_MAX)?,
                email: c.req_email("email")?,
            })
        }
        Some(other) => {
            return Err(p.err(
                "csm",
                format!(
                    "expected an object with name and email, got {}",
                    other.kind()
                ),
            ));
        }
    };
    let timezone = p.req_tz("timezone")?;
    let locale = p.req_enum("locale", "ja, en (e.g. ja-JP)")?;
    let contract_start = p.req_date("contract_start")?;
    let renewal_date = p.req_date("renewal_date")?;
    if renewal_date < contract_start {
        return Err(p.err(
            "renewal_date",
            format!("{renewal_date} is before contract_start {contract_start}"),
        ));
    }
    let renewals = p.req_u32("renewals")?;
    let arr = p.req_money("arr")?;
    Ok(AccountProfile {
        name,
        plan,
        industry,
        tier,
        csm,
        timezone,
        locale,
        contract_start,
        renewal_date,
        renewals,
        arr,
    })
}

fn parse_deadline(p: &Fields<'_>, now: DateTime<Utc>) -> Result<DeadlineSet, EventError> {
    let deadline_id = p.req_id("deadline_id")?;
    let due_at = p.req_timestamp("due_at")?;
    if let Some(limit) = now.checked_add_months(Months::new(DUE_AT_MAX_MONTHS))
        && due_at.with_timezone(&Utc) > limit
    {
        return Err(p.err("due_at", "is more than 5 years in the future"));
    }
    Ok(DeadlineSet {
        deadline_id,
        due_at,
        title: p.req_text("title", TEXT_MAX)?,
        kind: p.opt_slug("kind")?,
        link: p.opt_link("link")?,
    })
}

/// Typed access to one JSON object; `prefix` makes error paths like `properties.csm.email`.
/// JSON `null` is treated as absent, so optional fields may be sent as `null`.
struct Fields<'a> {
    obj: &'a Object<'a>,
    prefix: &'static str,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Object<'a>, prefix: &'static str) -> Self {
        Fields { obj, prefix }
    }

    fn err(&self, key: &str, message: impl Into<String>) -> EventError {
        EventError::new(format!("{}{key}", self.prefix), message)
    }

    fn get(&self, key: &str) -> Option<&'a Json<'a>> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn req(&self, key: &str) -> Result<&'a Json<'a>, EventError> {
        self.get(key).ok_or_else(|| self.err(key, "required"))
    }

    fn as_str(&self, key: &str, v: &'a Json<'a>) -> Result<&'a str, EventError> {
        v.as_str()
            .ok_or_else(|| self.err(key, format!("expected a string, got {}", v.kind())))
    }

    fn req_str(&self, key: &str) -> Result<&'a str, EventError> {
        self.as_str(key, self.req(key)?)
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, EventError> {
        self.get(key).map(|v| self.as_str(key, v)).transpose()
    }

    /// Run a string check on a required field.
    fn req_with<T>(
        &self,
        key: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, EventError> {
        check(self.req_str(key)?).map_err(|m| self.err(key, m))
    }

    fn opt_with<T>(
        &self,
        key: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, EventError> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => check(s).map(Some).map_err(|m| self.err(key, m)),
        }
    }

    fn req_id(&self, key: &str) -> Result<String, EventError> {
        self.req_with(key, check_id)
    }

    fn opt_id(&self, key: &str) -> Result<Option<String>, EventError> {
        self.opt_with(key, check_id)
    }

    fn req_slug(&self, key: &str) -> Result<String, EventError> {
        self.req_with(key, check_slug)
    }

    fn opt_slug(&self, key: &str) -> Result<Option<String>, EventError> {
        self.opt_with(key, check_slug)
    }

    fn req_text(&self, key: &str, max: usize) -> Result<String, EventError> {
        self.req_with(key, |s| check_line(s, max))
    }

    /// Empty or blank comments are treated as absent.
    fn opt_comment(&self, key: &str) -> Result<Option<String>, EventError> {
        Ok(self
            .opt_with(key, |s| check_multiline(s, COMMENT_MAX))?
            .filter(|s| !s.trim().is_empty()))
    }

    fn req_email(&self, key: &str) -> Result<String, EventError> {
        self.req_with(key, check_email)
    }

    fn opt_phone(&self, key: &str) -> Result<Option<String>, EventError> {
        self.opt_with(key, check_phone)
    }

    fn opt_link(&self, key: &str) -> Result<Option<String>, EventError> {
        self.opt_with(key, check_link)
    }

    fn req_tz(&self, key: &str) -> Result<Tz, EventError> {
        self.req_with(key, check_tz)
    }

    fn opt_tz(&self, key: &str) -> Result<Option<Tz>, EventError> {
        self.opt_with(key, check_tz)
    }

    fn req_date(&self, key: &str) -> Result<NaiveDate, EventError> {
        self.req_with(key, check_date)
    }

    fn opt_date(&self, key: &str) -> Result<Option<NaiveDate>, EventError> {
        self.opt_with(key, check_date)
    }

    fn req_timestamp(&self, key: &str) -> Result<DateTime<FixedOffset>, EventError> {
        self.req_with(key, check_timestamp)
    }

    fn req_enum<T: std::str::FromStr>(&self, key: &str, valid: &str) -> Result<T, EventError> {
        self.req_with(key, |s| check_enum(s, valid))
    }

    fn opt_enum<T: std::str::FromStr>(
        &self,
        key: &str,
        valid: &str,
    ) -> Result<Option<T>, EventError> {
        self.opt_with(key, |s| check_enum(s, valid))
    }

    fn req_score(&self, key: &str) -> Result<u8, EventError> {
        let v = self.req(key)?;
        let bad = |got: String| self.err(key, format!("expected an integer 0-10, got {got}"));
        match v {
            Json::Number(n) => match n.as_u64() {
                Some(s) if s <= 10 => Ok(s as u8),
                _ => Err(bad(n.to_string())),
            },
            other => Err(bad(other.kind().to_string())),
        }
    }

    fn req_u32(&self, key: &str) -> Result<u32, EventError> {
        let v = self.req(key)?;
        let bad =
            |got: String| self.err(key, format!("expected a non-negative integer, got {got}"));
        match v {
            Json::Number(n) => n
                .as_u64()
                .and_then(|u| u32::try_from(u).ok())
                .ok_or_else(|| bad(n.to_string())),
            other => Err(bad(other.kind().to_string())),
        }
    }

    fn req_money(&self, key: &str) -> Result<f64, EventError> {
        let v = self.req(key)?;
        let bad = |got: String| self.err(key, format!("expected a number >= 0, got {got}"));
        match v {
            Json::Number(n) => match n.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => {
                    let x = x + 0.0; // turns -0.0 into 0.0
                    // The table stores 0 and numbers from 1e-130 to below 1e126, and would
                    // refuse the rest on every retry: refuse them here, naming the field.
                    if x == 0.0 || (MIN_NUMBER..MAX_NUMBER).contains(&x) {
                        Ok(x)
                    } else {
                        Err(self.err(
                            key,
                            format!("expected 0 or a number from 1e-130 to below 1e126, got {n}"),
                        ))
                    }
                }
                _ => Err(bad(n.to_string())),
            },
            other => Err(bad(other.kind().to_string())),
        }
    }
}

/// The range of a non-zero number DynamoDB stores (its limits are 1E-130 and
/// 9.9999999999999999999999999999999999999E+125; an f64 has far fewer than its 38 digits).
const MIN_NUMBER: f64 = 1e-130;
const MAX_NUMBER: f64 = 1e126;

/// A short, escaped excerpt of user input for messages (never echo 10 KB back).
fn preview(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
    }
}

fn check_len(s: &str, max: usize) -> Result<(), String> {
    // Byte length bounds char count from above: skip counting for the common short case.
    if s.len() > max {
        let n = s.chars().count();
        if n > max {
            return Err(format!("is {n} characters; the limit is {max}"));
        }
    }
    Ok(())
}

fn check_id(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    check_len(s, ID_MAX)?;
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')))
    {
        return Err(format!(
            "contains {c:?}; allowed are letters, digits and . _ : @ -"
        ));
    }
    Ok(s.to_owned())
}

/// Whether `s` is a valid feature, step, category or kind name (lower snake_case, at most 64
/// characters), as the event contract accepts it.
pub fn is_slug(s: &str) -> bool {
    check_slug(s).is_ok()
}

/// Feature, step, category and kind names become attribute names in the store.
/// An unsubscribe category: one Nudge sends under, or `all`. Anything else (a typo) would
/// silently unsubscribe from nothing, so it is refused.
fn check_category(s: &str) -> Result<String, String> {
    use crate::domain::category::{ALL, CUSTOMER};
    if CUSTOMER.contains(&s) || s == ALL {
        return Ok(s.to_owned());
    }
    Err(format!(
        "unknown category {:?}; valid categories: {}, {ALL}",
        s.chars().take(64).collect::<String>(),
        CUSTOMER.join(", ")
    ))
}

fn check_slug(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    check_len(s, SLUG_MAX)?;
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "contains {c:?}; use lower snake_case (a-z, 0-9, _), like report_builder"
        ));
    }
    Ok(s.to_owned())
}

/// Single-line text (names, titles): they end up in email subjects and headers, so no control
/// characters at all. HTML is fine: templates escape at render time.
fn check_line(s: &str, max: usize) -> Result<String, String> {
    check_len(s, max)?;
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = s.chars().find(|c| is_control(*c)) {
        return Err(format!(
            "contains the control character U+{:04X}; line breaks and tabs are not allowed here",
            u32::from(c)
        ));
    }
    Ok(s.to_owned())
}

/// Multi-line text (NPS comments): line breaks and tabs are allowed; CRLF and CR are normalised
/// to LF because form posts from browsers send CRLF.
fn check_multiline(s: &str, max: usize) -> Result<String, String> {
    check_len(s, max)?;
    if let Some(c) = s
        .chars()
        .find(|c| is_control(*c) && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(format!(
            "contains the control character U+{:04X}; only line breaks and tabs are allowed",
            u32::from(c)
        ));
    }
    Ok(if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s.to_owned()
    })
}

fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Deliberately strict: addresses go into SES headers, so anything that could split or add a
/// header or recipient (whitespace, CR/LF, `<>`, `,`, `;`, quotes) is refused.
fn check_email(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > EMAIL_MAX {
        return Err(format!("is {} bytes; the limit is {EMAIL_MAX}", s.len()));
    }
    if let Some(c) = s.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || !c.is_ascii()
            || matches!(
                c,
                '<' | '>' | ',' | ';' | '"' | '(' | ')' | '[' | ']' | '\\'
            )
    }) {
        return Err(format!(
            "contains {c:?}; expected a plain address like name@example.com"
        ));
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("must contain exactly one @, like name@example.com".into());
    };
    if local.is_empty() || local.len() > 64 {
        return Err("the part before @ must be 1-64 characters".into());
    }
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !domain.contains('.') || !labels_ok {
        return Err(format!(
            "domain {} is not a valid domain like example.com",
            preview(domain)
        ));
    }
    Ok(s.to_owned())
}

fn check_phone(s: &str) -> Result<String, String> {
    let digits = s.strip_prefix('+').unwrap_or("");
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected E.164: + followed by 8-15 digits, like +819012345678".into());
    }
    Ok(s.to_owned())
}

/// Links are rendered into emails as hrefs: only absolute http(s) URLs, nothing that could
/// break out of an attribute.
fn check_link(s: &str) -> Result<String, String> {
    check_len(s, LINK_MAX)?;
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return Err("expected an absolute http(s) URL, like https://app.example.com/x".into());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the URL has no host".into());
    }
    if let Some(c) = s.chars().find(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\')
    }) {
        return Err(format!("contains {c:?}; percent-encode it"));
    }
    Ok(s.to_owned())
}

fn check_tz(s: &str) -> Result<Tz, String> {
    s.parse::<Tz>().map_err(|_| {
        format!(
            "unknown time zone {}; use an IANA name like Asia/Tokyo",
            preview(s)
        )
    })
}

fn check_enum<T: std::str::FromStr>(s: &str, valid: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("unknown value {}; expected one of {valid}", preview(s)))
}

fn check_year(year: i32) -> Result<(), String> {
    if (YEAR_MIN..=YEAR_MAX).contains(&year) {
        Ok(())
    } else {
        Err(format!("year {year} is outside {YEAR_MIN}-{YEAR_MAX}"))
    }
}

/// `YYYY-MM-DD` exactly (chrono's `%m` would also take `2026-4-1`).
fn check_date(s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let bad = || {
        format!(
            "expected a date YYYY-MM-DD, like 2026-04-01; got {}",
            preview(s)
        )
    };
    if !shape_ok {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    let year = num(0..4) as i32;
    check_year(year)?;
    NaiveDate::from_ymd_opt(year, num(5..7), num(8..10)).ok_or_else(bad)
}

/// RFC 3339 with an explicit offset: a timestamp without one is ambiguous by up to a day, and
/// "the morning of" depends on it.
fn check_timestamp(s: &str) -> Result<DateTime<FixedOffset>, String> {
    if s.len() <= 64
        && let Ok(dt) = DateTime::parse_from_rfc3339(s)
    {
        check_year(dt.naive_local().year())?;
        return Ok(dt);
    }
    let naive = s.len() <= 64
        && [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ]
        .iter()
        .any(|f| NaiveDateTime::parse_from_str(s, f).is_ok());
    if naive {
        Err(format!(
            "{} has no UTC offset; an offset like +09:00 or Z is required, e.g. {EXAMPLE_TS}",
            preview(s)
        ))
    } else {
        Err(format!(
            "expected an RFC 3339 timestamp with an offset, like {EXAMPLE_TS}; got {}",
            preview(s)
        ))
    }
}

#[cfg(test)]
mod tests;
