//! SES v2 adapter for the `Mailer` port (raw MIME, configuration set, tags).

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};

use super::{Mailer, OutgoingEmail, SendError, mime};

pub struct SesMailer {
    client: Client,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, configuration_set: Option<String>) -> Self {
        SesMailer {
            client,
            configuration_set,
        }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        let raw = RawMessage::builder()
            .data(Blob::new(mime::build(email)))
            .build()
            .map_err(|e| SendError::Rejected(e.to_string()))?;
        let mut req = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.configuration_set.clone());
        for (k, v) in &email.tags {
            if let Ok(tag) = MessageTag::builder().name(k).value(v).build() {
                req = req.email_tags(tag);
            }
        }
        match req.send().await {
            Ok(out) => Ok(out.message_id().unwrap_or_default().to_string()),
            Err(e) => Err(classify(e)),
        }
    }
}

/// What a provider error says about the message: only what surely did not send is retried
/// (throttling, a connection that never reached the provider); a refusal is final; everything
/// else may have sent.
pub(crate) fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(
    e: SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>,
) -> SendError {
    let short = |e: &SdkError<E, _>| format!("{e:?}").chars().take(300).collect::<String>();
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let msg = se.err().message().unwrap_or("").to_string();
            let status = se.raw().status().as_u16();
            match code.as_str() {
                "TooManyRequestsException"
                | "Throttling"
                | "ThrottlingException"
                | "LimitExceededException"
                | "ThrottledException" => SendError::Throttled(format!("{code}: {msg}")),
                _ if status >= 500 => SendError::Unknown(format!("{code}: {msg}")),
                _ => SendError::Rejected(format!("{code}: {msg}")),
            }
        }
        // Never left this process.
        SdkError::ConstructionFailure(_) => SendError::Rejected(short(&e)),
        // No connection was made: the request never reached the provider.
        SdkError::DispatchFailure(d)
            if !d.is_timeout() && d.as_connector_error().is_some_and(|c| never_connected(c)) =>
        {
            SendError::Transient(short(&e))
        }
        // A timeout, a connection reset or closed after the request may have left, an
        // unreadable answer: the SDK calls some of these I/O errors too, so I/O alone does not
        // prove the message stayed here.
        _ => SendError::Unknown(short(&e)),
    }
}

/// Whether the error chain shows a connection that was never made (refused, no route): only
/// then did no byte of the request reach the provider.
fn never_connected(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable
            )
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// SES and SNS clients must not retry on their own: the SDK's standard retry resends on
/// timeouts and server errors, which may send a message twice. The send path retries what
/// surely did not send, on the nudge's own schedule.
pub fn no_retries() -> aws_sdk_sesv2::config::retry::RetryConfig {
    aws_sdk_sesv2::config::retry::RetryConfig::disabled()
}

#[cfg(test)]
mod tests {
    use aws_sdk_sesv2::config::http::HttpResponse;
    use aws_sdk_sesv2::config::retry::RetryConfig;
    use aws_sdk_sesv2::operation::send_email::SendEmailOutput;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_types::body::SdkBody;
    use chrono::{TimeZone, Utc};

    use super::*;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            from: "nudge@example.com".into(),
            to: "a@example.jp".into(),
            reply_to: None,
            subject: "期限まであと3日".into(),
            text: "hello".into(),
            html: "<p>hello</p>".into(),
            headers: vec![],
            tags: vec![("nudge_kind".into(), "deadline_reminder".into())],
            date: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
            message_id: "0123@example.com".into(),
        }
    }

    /// An SES v2 (REST-JSON) error response as the service sends it.
    fn error_response(status: u16, code: &'static str) -> HttpResponse {
        let mut resp = HttpResponse::new(
            status.try_into().unwrap(),
            SdkBody::from(format!(r#"{{"message":"{code} from the mock"}}"#)),
        );
        resp.headers_mut().insert("x-amzn-ErrorType", code);
        resp.headers_mut()
            .insert("content-type", "application/json");
        resp
    }

    /// Sends one email through a client that answers with `rule`; retries are off so the test
    /// sees how one response is classified.
    async fn send(rule: Rule) -> Result<String, SendError> {
        let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, &[&rule], |c| c
            .retry_config(RetryConfig::disabled()));
        SesMailer::new(client, Some("nudge".into()))
            .send_email(&email())
            .await
    }

    fn answer(status: u16, code: &'static str) -> Rule {
        mock!(Client::send_email).then_http_response(move || error_response(status, code))
    }

    #[tokio::test]
    async fn ses_success_returns_the_message_id() {
        let rule = mock!(Client::send_email)
            .match_requests(|r| {
                r.configuration_set_name() == Some("nudge")
                    && r.content()
                        .and_then(|c| c.raw())
                        .is_some_and(|raw| !raw.data().as_ref().is_empty())
            })
            .then_output(|| SendEmailOutput::builder().message_id("ses-1").build());
        assert_eq!(send(rule).await, Ok("ses-1".to_string()));
    }

    #[tokio::test]
    async fn ses_throttling_and_the_sending_quota_are_throttled_never_an_attempt() {
        let r = send(answer(429, "TooManyRequestsException")).await;
        assert!(
            matches!(r, Err(SendError::Throttled(ref m)) if m.starts_with("TooManyRequestsException")),
            "{r:?}"
        );
        let r = send(answer(400, "LimitExceededException")).await;
        assert!(matches!(r, Err(SendError::Throttled(_))), "{r:?}");
    }

    #[tokio::test]
    async fn ses_server_errors_are_unknown_outcomes_not_retries() {
        for (status, code) in [(500, "InternalFailure"), (503, "ServiceUnavailable")] {
            let r = send(answer(status, code)).await;
            assert!(matches!(r, Err(SendError::Unknown(_))), "{code}: {r:?}");
        }
    }

    #[tokio::test]
    async fn ses_message_rejected_is_rejected() {
        let r = send(answer(400, "MessageRejected")).await;
        assert!(
            matches!(r, Err(SendError::Rejected(ref m)) if m.starts_with("MessageRejected")),
            "{r:?}"
        );
    }

    fn dispatch_failure(
        error: aws_sdk_sesv2::error::ConnectorError,
    ) -> SdkError<aws_sdk_sesv2::operation::send_email::SendEmailError, HttpResponse> {
        SdkError::dispatch_failure(error)
    }

    fn io(kind: std::io::ErrorKind) -> aws_sdk_sesv2::error::ConnectorError {
        aws_sdk_sesv2::error::ConnectorError::io(Box::new(std::io::Error::new(kind, "socket")))
    }

    #[test]
    fn a_refused_connection_is_retried_because_nothing_left() {
        let r = classify(dispatch_failure(io(std::io::ErrorKind::ConnectionRefused)));
        assert!(matches!(r, SendError::Transient(_)), "{r:?}");
    }

    #[test]
    fn a_connection_reset_after_sending_is_an_unknown_outcome_not_a_retry() {
        for kind in [
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::UnexpectedEof,
        ] {
            let r = classify(dispatch_failure(io(kind)));
            assert!(matches!(r, SendError::Unknown(_)), "{kind:?}: {r:?}");
        }
        let timeout = aws_sdk_sesv2::error::ConnectorError::timeout(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connect timed out",
        )));
        let r = classify(dispatch_failure(timeout));
        assert!(matches!(r, SendError::Unknown(_)), "{r:?}");
    }

    #[tokio::test]
    async fn ses_not_found_is_rejected() {
        let r = send(answer(404, "NotFoundException")).await;
        assert!(matches!(r, Err(SendError::Rejected(_))), "{r:?}");
    }
}
