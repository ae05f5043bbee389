//! Simulated recipients: what happens to a message after it leaves, fed back through the real
//! SES feedback path (SNS -> `ingest`), and a copy of every message for the report.
//!
//! [`Recording`] wraps the SES and SNS adapters: each message still goes to the provider (moto
//! locally) and is also kept, with its rendered text and HTML. After each scheduled run the
//! simulation hands the new messages to [`Engagement::feedback`], which decides, from the
//! recipient's profile and a hash of (seed, message), whether and when it is delivered,
//! bounced, opened and clicked. Same seed and messages, same feedback: the delivery log stays
//! byte-for-byte reproducible although provider message ids are random.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use nudge_shared::channels::{Mailer, Notification, Notifier, OutgoingEmail, SendError};
use nudge_shared::delivery::parse_nudge_ref_tag;
use nudge_shared::store::schema::fnv1a;

use crate::faults::{self, Faults};
use serde_json::{Value, json};

/// How a recipient treats mail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// Chance that a delivered message is opened.
    pub open: f64,
    /// Chance that an opened message is clicked.
    pub click: f64,
    /// Every message to this address bounces (the address is gone).
    pub bounces: bool,
}

/// Recipients' behaviour by address; unknown addresses open half their mail.
#[derive(Debug, Clone, Default)]
pub struct Engagement {
    seed: u64,
    by_address: BTreeMap<String, Behaviour>,
}

/// One message the providers accepted, as the simulation saw it leave.
#[derive(Debug, Clone)]
pub struct SentMessage {
    /// The provider's message id (random per run: never in the report or the log).
    pub provider_message_id: String,
    /// `email` or `sns`.
    pub channel: &'static str,
    /// Address or topic.
    pub to: String,
    pub subject: String,
    pub text: String,
    /// Empty for SNS.
    pub html: String,
    /// (account, nudge id) from the message's tags.
    pub nudge: Option<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// One SES event to publish at `at`.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub message: Value,
}

/// A uniform number in [0, 1) from the hash of `parts`.
/// Each part is followed by a 0xff byte, so ("ab", "c") and ("a", "bc") differ.
fn roll(seed: u64, parts: &[&[u8]]) -> f64 {
    let mut bytes = Vec::new();
    for p in std::iter::once(&seed.to_le_bytes()[..]).chain(parts.iter().copied()) {
        bytes.extend_from_slice(p);
        bytes.push(0xff);
    }
    (fnv1a(&bytes) >> 11) as f64 / (1u64 << 53) as f64
}

impl Engagement {
    pub fn new(seed: u64) -> Engagement {
        Engagement {
            seed,
            by_address: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, address: &str, b: Behaviour) {
        self.by_address.insert(address.to_ascii_lowercase(), b);
    }

    pub fn behaviour(&self, address: &str) -> Behaviour {
        self.by_address
            .get(&address.to_ascii_lowercase())
            .copied()
            .unwrap_or(Behaviour {
                open: 0.5,
                click: 0.3,
                bounces: false,
            })
    }

    /// The SES events of an email sent at `sent_at`: its `Send` at once, a delivery or a
    /// permanent bounce a minute later, then perhaps an open (within two days) and a click a
    /// few minutes after it.
    pub fn feedback(
        &self,
        m: &SentMessage,
        sent_at: DateTime<Utc>,
        configuration_set: &str,
    ) -> Vec<Feedback> {
        if m.channel != "email" {
            return Vec::new();
        }
        let b = self.behaviour(&m.to);
        // The message's identity that does not change between runs: who, what, when.
        let (account, nudge) = m.nudge.clone().unwrap_or_default();
        let key = [
            m.to.as_bytes(),
            account.as_bytes(),
            nudge.as_bytes(),
            m.subject.as_bytes(),
        ];
        let r = |what: &str| {
            let mut parts = key.to_vec();
            parts.push(what.as_bytes());
            roll(self.seed, &parts)
        };
        let mail = self.mail_section(m, sent_at, configuration_set);
        // SES's `Send` event: the message was accepted.
        let accepted = Feedback {
            at: sent_at,
            kind: "Send",
            message: json!({"eventType": "Send", "mail": mail, "send": {}}),
        };
        let at = sent_at + Duration::minutes(1);
        if b.bounces {
            return vec![
                accepted,
                Feedback {
                    at,
                    kind: "Bounce",
                    message: json!({"eventType": "Bounce", "mail": mail, "bounce": {
                    "bounceType": "Permanent", "bounceSubType": "General",
                    "bouncedRecipients": [{"emailAddress": m.to, "action": "failed",
                        "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                    "timestamp": ts(at)}}),
                },
            ];
        }
        let mut out = vec![
            accepted,
            Feedback {
                at,
                kind: "Delivery",
                message: json!({"eventType": "Delivery", "mail": mail,
                "delivery": {"timestamp": ts(at), "recipients": [m.to]}}),
            },
        ];
        if r("open") < b.open {
            // Most opens come within hours; some the next day.
            let delay = Duration::minutes(5 + (r("open-delay") * 36.0 * 60.0) as i64);
            let opened = sent_at + delay;
            out.push(Feedback {
                at: opened,
                kind: "Open",
                message: json!({"eventType": "Open", "mail": mail,
                    "open": {"timestamp": ts(opened), "userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.10"}}),
            });
            if r("click") < b.click {
                let clicked = opened + Duration::minutes(2);
                out.push(Feedback {
                    at: clicked,
                    kind: "Click",
                    message: json!({"eventType": "Click", "mail": mail,
                        "click": {"timestamp": ts(clicked), "link": "https://app.example/",
                            "userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.10"}}),
                });
            }
        }
        out
    }

    fn mail_section(&self, m: &SentMessage, sent_at: DateTime<Utc>, config_set: &str) -> Value {
        let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in &m.tags {
            tags.entry(k.clone()).or_default().push(v.clone());
        }
        tags.insert("ses:configuration-set".into(), vec![config_set.to_string()]);
        json!({
            "timestamp": ts(sent_at),
            "source": "nudge@example.com",
            "sendingAccountId": SENDING_ACCOUNT,
            "messageId": m.provider_message_id,
            "destination": [m.to],
            "tags": tags,
        })
    }
}

/// The account moto runs as.
pub const SENDING_ACCOUNT: &str = "123456789012";

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The SNS event that carries `feedback` to ingest from `topic_arn`.
pub fn sns_event(topic_arn: &str, feedback: &[Feedback]) -> Value {
    let records: Vec<Value> = feedback
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": format!("{topic_arn}:sim"),
                "Sns": {
                    "Type": "Notification",
                    "MessageId": format!("sim-{}-{i}", f.at.timestamp()),
                    "TopicArn": topic_arn,
                    "Subject": null,
                    "Message": f.message.to_string(),
                    "Timestamp": ts(f.at),
                    "SignatureVersion": "1",
                    "Signature": "SIMULATED",
                    "SigningCertUrl": "https://sns.example/cert.pem",
                    "UnsubscribeUrl": "https://sns.example/unsubscribe",
                    "MessageAttributes": {}
                }
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The SES and SNS adapters, recording what they send: every message the provider accepted,
/// including those whose answer a fault lost (the provider sent them all the same).
pub struct Recording {
    mailer: Arc<dyn Mailer>,
    notifier: Arc<dyn Notifier>,
    faults: Option<Faults>,
    sent: Mutex<Vec<SentMessage>>,
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Recording {
    pub fn new(mailer: Arc<dyn Mailer>, notifier: Arc<dyn Notifier>) -> Arc<Self> {
        Self::with_faults(mailer, notifier, None)
    }

    /// Recording behind a fault layer, which tells which lost answers were sends all the same.
    pub fn with_faults(
        mailer: Arc<dyn Mailer>,
        notifier: Arc<dyn Notifier>,
        faults: Option<Faults>,
    ) -> Arc<Self> {
        Arc::new(Recording {
            mailer,
            notifier,
            faults,
            sent: Mutex::new(Vec::new()),
        })
    }

    /// The messages sent since the last call, in the order they left.
    pub fn take(&self) -> Vec<SentMessage> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn keep(&self, m: SentMessage) {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).push(m);
    }

    /// Sends through `send` with the message's reference known to the fault layer; the
    /// provider's message id when it accepted the message, even if its answer was lost.
    async fn through<F>(
        &self,
        tags: &[(String, String)],
        send: F,
    ) -> (Result<String, SendError>, Option<String>)
    where
        F: std::future::Future<Output = Result<String, SendError>>,
    {
        let Some(reference) = tag(tags, "nref").map(str::to_string) else {
            let r = send.await;
            let id = r.as_ref().ok().cloned();
            return (r, id);
        };
        let r = faults::SENDING.scope(reference.clone(), send).await;
        let id = match &r {
            Ok(id) => Some(id.clone()),
            Err(_)
                if self
                    .faults
                    .as_ref()
                    .is_some_and(|f| f.accepted_unanswered(&reference)) =>
            {
                Some(format!("answer-lost-{reference}"))
            }
            Err(_) => None,
        };
        (r, id)
    }
}

#[async_trait]
impl Mailer for Recording {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        let (r, id) = self
            .through(&email.tags, self.mailer.send_email(email))
            .await;
        if let Some(id) = id {
            self.keep(SentMessage {
                provider_message_id: id,
                channel: "email",
                to: email.to.clone(),
                subject: email.subject.clone(),
                text: email.text.clone(),
                html: email.html.clone(),
                nudge: tag(&email.tags, "nref").and_then(parse_nudge_ref_tag),
                tags: email.tags.clone(),
            });
        }
        r
    }
}

#[async_trait]
impl Notifier for Recording {
    async fn notify(&self, n: &Notification) -> Result<String, SendError> {
        let (r, id) = self.through(&n.tags, self.notifier.notify(n)).await;
        if let Some(id) = id {
            self.keep(SentMessage {
                provider_message_id: id,
                channel: "sns",
                to: n.topic_arn.clone(),
                subject: n.subject.clone(),
                text: n.message.clone(),
                html: String::new(),
                nudge: tag(&n.tags, "nref").and_then(parse_nudge_ref_tag),
                tags: n.tags.clone(),
            });
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str, nudge: &str) -> SentMessage {
        SentMessage {
            provider_message_id: "random-1".into(),
            channel: "email",
            to: to.into(),
            subject: "Hello".into(),
            text: String::new(),
            html: String::new(),
            nudge: Some(("acme".into(), nudge.into())),
            tags: vec![("nudge_kind".into(), "milestone".into())],
        }
    }

    #[test]
    fn feedback_depends_on_the_message_not_on_the_provider_id() {
        let mut e = Engagement::new(1);
        e.insert(
            "a@x.example",
            Behaviour {
                open: 0.5,
                click: 0.5,
                bounces: false,
            },
        );
        let t = Utc::now();
        let mut m = message("a@x.example", "n1");
        let a: Vec<_> = e
            .feedback(&m, t, "cs")
            .iter()
            .map(|f| (f.at, f.kind))
            .collect();
        m.provider_message_id = "random-2".into();
        let b: Vec<_> = e
            .feedback(&m, t, "cs")
            .iter()
            .map(|f| (f.at, f.kind))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn open_rates_follow_the_profile_and_a_bounce_follows_only_the_send() {
        let mut e = Engagement::new(3);
        e.insert(
            "keen@x.example",
            Behaviour {
                open: 0.9,
                click: 0.0,
                bounces: false,
            },
        );
        e.insert(
            "gone@x.example",
            Behaviour {
                open: 0.9,
                click: 0.0,
                bounces: true,
            },
        );
        let t = Utc::now();
        let opens = (0..1000)
            .filter(|i| {
                e.feedback(&message("keen@x.example", &format!("n{i}")), t, "cs")
                    .iter()
                    .any(|f| f.kind == "Open")
            })
            .count();
        assert!((850..950).contains(&opens), "{opens} opens of 1000");
        // SES accepts the message (its `Send` event), then it bounces; nothing else comes.
        let gone = e.feedback(&message("gone@x.example", "n1"), t, "cs");
        assert_eq!(
            gone.iter().map(|f| f.kind).collect::<Vec<_>>(),
            ["Send", "Bounce"]
        );
        assert_eq!(gone[0].at, t);
        assert_eq!(
            gone[0].message["mail"]["tags"]["ses:configuration-set"][0],
            "cs"
        );
    }
}
