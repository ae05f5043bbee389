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

pub(crate) fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> SendError {
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let msg = se.err().message().unwrap_or("").to_string();
            match code.as_str() {
                "TooManyRequestsException"
                | "Throttling"
                | "ThrottlingException"
                | "LimitExceededException"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "InternalServerError" => SendError::Transient(format!("{code}: {msg}")),
                _ => SendError::Rejected(format!("{code}: {msg}")),
            }
        }
        _ => SendError::Transient(format!("{e:?}").chars().take(300).collect()),
    }
}
