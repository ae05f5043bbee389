//! `ErasureStore` in memory: what `dynamo/erasure.rs` does, in one atomic step.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, key, request};
use crate::domain::NudgeStatus;
use crate::store::{ContactErasure, ERASED, ErasureStore, StoreError};

#[async_trait]
impl ErasureStore for MemoryStore {
    async fn erase_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        _at: DateTime<Utc>,
    ) -> Result<Option<ContactErasure>, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(contact) = s.contacts.get(&key(account_id, contact_id)) else {
            return Ok(None);
        };
        let mut out = ContactErasure {
            cap_reservations: contact.cap_sends.len(),
            ..ContactErasure::default()
        };
        let no_vars = serde_json::Value::Object(Default::default());
        for ((a, _), stored) in s.nudges.iter_mut() {
            let n = &mut stored.nudge;
            if a != account_id || n.contact_id.as_deref() != Some(contact_id) {
                continue;
            }
            match n.status {
                NudgeStatus::Pending => {
                    n.status = NudgeStatus::Cancelled;
                    n.reason = Some(ERASED.to_string());
                    stored.due = None;
                    out.cancelled += 1;
                    n.vars = no_vars.clone();
                    out.nudges_redacted += 1;
                    continue;
                }
                NudgeStatus::Claimed => out.in_flight += 1,
                _ => {}
            }
            if n.vars != no_vars {
                n.vars = no_vars.clone();
                out.nudges_redacted += 1;
            }
        }
        for ((a, _), entry) in s.log.iter_mut() {
            if a == account_id
                && entry.contact_id.as_deref() == Some(contact_id)
                && !(entry.to.is_empty() && entry.subject.is_empty())
            {
                entry.to.clear();
                entry.subject.clear();
                out.log_entries_redacted += 1;
            }
        }
        s.contacts.remove(&key(account_id, contact_id));
        Ok(Some(out))
    }
}
