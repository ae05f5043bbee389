//! Back to the wire shape, for storing the raw event. `parse_event(&e.to_wire(), now) == e`.

use chrono::SecondsFormat;
use serde_json::{Map, Value};

use super::{Event, EventPayload};

impl Event {
    /// `{"event_id","account_id","contact_id"?,"type","occurred_at","properties":{...}}`, with
    /// `occurred_at` keeping its original offset and sub-second precision.
    pub fn to_wire(&self) -> Value {
        let mut m = Map::new();
        m.insert("event_id".into(), self.event_id.clone().into());
        m.insert("account_id".into(), self.account_id.clone().into());
        if let Some(c) = &self.contact_id {
            m.insert("contact_id".into(), c.clone().into());
        }
        m.insert("type".into(), self.event_type().as_str().into());
        m.insert(
            "occurred_at".into(),
            self.occurred_at
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
                .into(),
        );
        m.insert(
            "properties".into(),
            Value::Object(self.payload.properties()),
        );
        Value::Object(m)
    }
}

impl EventPayload {
    /// The wire `properties` object (empty for types without properties).
    pub fn properties(&self) -> Map<String, Value> {
        let mut p = Props(Map::new());
        match self {
            EventPayload::AccountUpserted(a) => {
                p.set("name", a.name.as_str());
                p.set("plan", a.plan.as_str());
                p.set("industry", a.industry.as_str());
                p.opt("tier", a.tier.map(|t| t.as_str()));
                if let Some(csm) = &a.csm {
                    let mut c = Props(Map::new());
                    c.set("name", csm.name.as_str());
                    c.set("email", csm.email.as_str());
                    p.0.insert("csm".into(), Value::Object(c.0));
                }
                p.set("timezone", a.timezone.name());
                p.set("locale", a.locale.as_str());
                p.set("contract_start", a.contract_start.to_string());
                p.set("renewal_date", a.renewal_date.to_string());
                p.set("renewals", a.renewals);
                p.set("arr", a.arr);
            }
            EventPayload::ContactUpserted(c) => {
                p.set("email", c.email.as_str());
                p.opt("phone", c.phone.as_deref());
                p.set("name", c.name.as_str());
                p.set("role", c.role.as_str());
                p.opt("timezone", c.timezone.map(|t| t.name()));
                p.opt("locale", c.locale.map(|l| l.as_str()));
            }
            EventPayload::FeatureUsed { feature } => p.set("feature", feature.as_str()),
            EventPayload::SetupStepCompleted { step } => p.set("step", step.as_str()),
            EventPayload::AdminChanged {
                previous_contact_id,
            } => p.opt("previous_contact_id", previous_contact_id.as_deref()),
            EventPayload::SupportTicketOpened {
                ticket_id,
                severity,
            } => {
                p.set("ticket_id", ticket_id.as_str());
                p.set("severity", severity.as_str());
            }
            EventPayload::SupportTicketClosed {
                ticket_id,
                severity,
            } => {
                p.set("ticket_id", ticket_id.as_str());
                p.opt("severity", severity.map(|s| s.as_str()));
            }
            EventPayload::NpsResponse { score, comment } => {
                p.set("score", *score);
                p.opt("comment", comment.as_deref());
            }
            EventPayload::DeadlineSet(d) => {
                p.set("deadline_id", d.deadline_id.as_str());
                p.set(
                    "due_at",
                    d.due_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                );
                p.set("title", d.title.as_str());
                p.opt("kind", d.kind.as_deref());
                p.opt("link", d.link.as_deref());
            }
            EventPayload::DeadlineCompleted { deadline_id }
            | EventPayload::DeadlineCancelled { deadline_id } => {
                p.set("deadline_id", deadline_id.as_str())
            }
            EventPayload::ContractRenewed { renewal_date } => {
                p.opt("renewal_date", renewal_date.map(|d| d.to_string()))
            }
            EventPayload::Unsubscribed { category } => p.opt("category", category.as_deref()),
            EventPayload::Login
            | EventPayload::ReportCreated
            | EventPayload::CustomerReplied
            | EventPayload::AutomationResumed
            | EventPayload::Churned => {}
        }
        p.0
    }
}

struct Props(Map<String, Value>);

impl Props {
    fn set(&mut self, key: &str, v: impl Into<Value>) {
        self.0.insert(key.to_owned(), v.into());
    }

    fn opt(&mut self, key: &str, v: Option<impl Into<Value>>) {
        if let Some(v) = v {
            self.set(key, v);
        }
    }
}
