//! The `Queue` port: work a scheduled run fans out to its own function's queue worker (the
//! daily health run's account shards, say), so one invocation never has to do it all. SQS in
//! production ([`super::sqs::SqsQueue`]); [`MemoryQueue`] in `nudge simulate` and tests, where
//! the caller drains it in process.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use super::SendError;

/// One message for a feature's queue worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    /// The registry name of the function whose worker takes it.
    pub feature: String,
    /// The message body (JSON the feature defines; it carries the run's "now").
    pub body: String,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues `bodies` for `feature`'s worker; all or an error (nothing is half-sent silently:
    /// the error names what was not enqueued).
    async fn enqueue(&self, feature: &str, bodies: &[String]) -> Result<(), SendError>;
}

/// An in-process queue: `nudge simulate` and tests drain it by calling the worker themselves.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    items: Mutex<VecDeque<WorkItem>>,
}

impl MemoryQueue {
    /// Everything enqueued so far, oldest first; the queue is empty afterwards.
    pub fn take_all(&self) -> Vec<WorkItem> {
        match self.items.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.items.lock().map(|q| q.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, feature: &str, bodies: &[String]) -> Result<(), SendError> {
        let mut q = self
            .items
            .lock()
            .map_err(|_| SendError::Transient("in-process queue poisoned".into()))?;
        q.extend(bodies.iter().map(|b| WorkItem {
            feature: feature.to_string(),
            body: b.clone(),
        }));
        Ok(())
    }
}

/// The queue of a `Deps` built without one: enqueueing is an error that says so, never a silent
/// drop.
#[derive(Debug, Default)]
pub struct NoQueue;

#[async_trait]
impl Queue for NoQueue {
    async fn enqueue(&self, feature: &str, _: &[String]) -> Result<(), SendError> {
        Err(SendError::Rejected(format!(
            "no work queue is configured (needed by {feature})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_queue_keeps_order_and_drains_once() {
        let q = MemoryQueue::default();
        q.enqueue("health", &["a".into(), "b".into()])
            .await
            .unwrap();
        q.enqueue("milestones", &["c".into()]).await.unwrap();
        assert_eq!(q.len(), 3);
        let items = q.take_all();
        let bodies: Vec<&str> = items.iter().map(|i| i.body.as_str()).collect();
        assert_eq!(bodies, ["a", "b", "c"]);
        assert_eq!(items[2].feature, "milestones");
        assert!(q.is_empty());
    }
}
