//! SQS adapter for the `Queue` port: one queue per function, from `NUDGE_QUEUE_URLS`
//! (`health=https://sqs...`), sent in batches of 10 (SQS's limit).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::queue::Queue;
use super::{SendError, ses::classify};

pub struct SqsQueue {
    client: Client,
    /// feature name -> queue URL.
    urls: BTreeMap<String, String>,
}

impl SqsQueue {
    pub fn new(client: Client, urls: BTreeMap<String, String>) -> Self {
        SqsQueue { client, urls }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn enqueue(&self, feature: &str, bodies: &[String]) -> Result<(), SendError> {
        let url = self.urls.get(feature).ok_or_else(|| {
            SendError::Rejected(format!(
                "no queue configured for {feature}: add {feature}=<queue url> to NUDGE_QUEUE_URLS"
            ))
        })?;
        for (c, chunk) in bodies.chunks(10).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(body)
                        .build()
                        .map_err(|e| SendError::Rejected(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(classify)?;
            if let Some(f) = out.failed().first() {
                return Err(SendError::Transient(format!(
                    "{} of {} messages not enqueued from batch {c} (first: {} {})",
                    out.failed().len(),
                    chunk.len(),
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}
