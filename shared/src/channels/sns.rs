//! SNS adapter for the `Notifier` port (the CSM topic).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use super::{Notification, Notifier, SendError};

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
        let mut req = self.client.publish().message(&n.message);
        // SNS subjects must be ASCII, < 100 chars, no control characters.
        req = req.topic_arn(&n.topic_arn).subject(sns_subject(&n.subject));
        for (k, v) in &n.tags {
            if let Ok(value) = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
            {
                req = req.message_attributes(k, value);
            }
        }
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

#[cfg(test)]
mod tests {
    use aws_sdk_sns::config::http::HttpResponse;
    use aws_sdk_sns::config::retry::RetryConfig;
    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn alert() -> Notification {
        Notification {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:csm".into(),
            subject: "ヘルスアラート: Acme".into(),
            message: "score 42".into(),
            tags: vec![("nudge_kind".into(), "health_alert".into())],
        }
    }

    /// An SNS (AWS Query, XML) error response as the service sends it.
    fn error_response(status: u16, code: &str) -> HttpResponse {
        let mut resp = HttpResponse::new(
            status.try_into().unwrap(),
            SdkBody::from(format!(
                "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
                 <Type>Sender</Type><Code>{code}</Code><Message>{code} from the mock</Message>\
                 </Error><RequestId>r-1</RequestId></ErrorResponse>"
            )),
        );
        resp.headers_mut().insert("content-type", "text/xml");
        resp
    }

    /// Publishes through a client that answers with `rule`; retries are off so the test sees
    /// how one response is classified.
    async fn notify(rule: Rule) -> Result<String, SendError> {
        let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, &[&rule], |c| c
            .retry_config(RetryConfig::disabled()));
        SnsNotifier::new(client).notify(&alert()).await
    }

    fn answer(status: u16, code: &'static str) -> Rule {
        mock!(Client::publish).then_http_response(move || error_response(status, code))
    }

    #[tokio::test]
    async fn sns_success_returns_the_message_id() {
        let rule = mock!(Client::publish)
            // The subject is made ASCII (SNS refuses anything else); tags become attributes.
            .match_requests(|r| {
                r.subject() == Some(": Acme")
                    && r.message_attributes()
                        .and_then(|m| m.get("nudge_kind"))
                        .is_some_and(|v| {
                            v.data_type() == "String" && v.string_value() == Some("health_alert")
                        })
            })
            .then_output(|| PublishOutput::builder().message_id("sns-1").build());
        assert_eq!(notify(rule).await, Ok("sns-1".to_string()));
    }

    #[tokio::test]
    async fn sns_throttling_is_throttled() {
        let r = notify(answer(400, "Throttling")).await;
        assert!(
            matches!(r, Err(SendError::Throttled(ref m)) if m.starts_with("Throttling")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn sns_internal_error_is_an_unknown_outcome_not_a_rejection() {
        let r = notify(answer(500, "InternalError")).await;
        assert!(
            matches!(r, Err(SendError::Unknown(ref m)) if m.starts_with("InternalError")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn sns_not_found_is_rejected() {
        let r = notify(answer(404, "NotFound")).await;
        assert!(
            matches!(r, Err(SendError::Rejected(ref m)) if m.starts_with("NotFound")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn sns_invalid_parameter_is_rejected() {
        let r = notify(answer(400, "InvalidParameter")).await;
        assert!(matches!(r, Err(SendError::Rejected(_))), "{r:?}");
    }
}
