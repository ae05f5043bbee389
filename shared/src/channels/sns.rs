//! SNS adapter for the `Notifier` port (CSM topic, SMS).

use async_trait::async_trait;
use aws_sdk_sns::Client;

use super::{Notification, Notifier, NotifyTarget, SendError};

pub struct SnsNotifier {
    client: Client,
}

impl SnsNotifier {
    pub fn new(client: Client) -> Self {
        SnsNotifier { client }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, n: &Notification) -> Result<String, SendError> {
        let req = self.client.publish().message(&n.message);
        let req = match &n.target {
            // SNS subjects must be ASCII, < 100 chars, no control characters.
            NotifyTarget::Topic(arn) => req.topic_arn(arn).subject(sns_subject(&n.subject)),
            NotifyTarget::Sms(phone) => req.phone_number(phone),
        };
        match req.send().await {
            Ok(out) => Ok(out.message_id().unwrap_or_default().to_string()),
            Err(e) => Err(super::ses::classify(e)),
        }
    }
}

fn sns_subject(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(99)
        .collect();
    if clean.is_empty() {
        "Nudge".into()
    } else {
        clean
    }
}
