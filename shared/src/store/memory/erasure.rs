//! `ErasureStore` in memory: what `dynamo/erasure.rs` does, in one atomic step.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, key, request};
use crate::domain::NudgeStatus;
use crate::events::erase::{erase_personal_properties, nps_comment};
use crate::store::erasure::{forget_quotes, stored_forms};
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

        let theirs = |a: &str, c: Option<&str>| a == account_id && c == Some(contact_id);
        let answered: Vec<String> = s
            .raw_events
            .iter()
            .filter(|((a, _), e)| theirs(a, e.contact_id.as_deref()))
            .filter(|(_, e)| e.event_type == crate::events::EventType::NpsResponse.as_str())
            .map(|((_, id), _)| id.clone())
            .collect();
        let mut comments: Vec<String> = s
            .raw_events
            .iter()
            .filter(|((a, _), e)| theirs(a, e.contact_id.as_deref()))
            .filter_map(|(_, e)| serde_json::from_str::<serde_json::Value>(&e.body).ok())
            .filter_map(|v| nps_comment(&v).map(str::to_string))
            .collect();
        if let Some(answers) = s.health.nps_answers_mut(account_id) {
            comments.extend(
                answered
                    .iter()
                    .filter_map(|id| answers.get(id)?.comment.clone()),
            );
        }
        let quotes = stored_forms(comments.iter().map(String::as_str));

        let no_vars = serde_json::Value::Object(Default::default());
        for ((a, _), stored) in s.nudges.iter_mut() {
            let n = &mut stored.nudge;
            if a != account_id {
                continue;
            }
            if n.contact_id.as_deref() != Some(contact_id) {
                if forget_quotes(&mut n.vars, &quotes) {
                    out.comments_removed += 1;
                }
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
        for ((a, _), d) in s.deadlines.iter_mut() {
            // The contact id stays: a deadline without one goes to the account's admin.
            if theirs(a, d.contact_id.as_deref()) && (!d.title.is_empty() || d.link.is_some()) {
                d.title.clear();
                d.link = None;
                out.deadlines_redacted += 1;
            }
        }
        if let Some(answers) = s.health.nps_answers_mut(account_id) {
            for id in &answered {
                if let Some(answer) = answers.get_mut(id)
                    && answer.comment.take().is_some()
                {
                    out.comments_removed += 1;
                }
            }
        }
        for ((a, _), e) in s.raw_events.iter_mut() {
            if !theirs(a, e.contact_id.as_deref()) {
                continue;
            }
            let Ok(mut wire) = serde_json::from_str::<serde_json::Value>(&e.body) else {
                continue;
            };
            if erase_personal_properties(&mut wire) {
                e.body = wire.to_string();
                out.raw_events_redacted += 1;
            }
        }
        s.contacts.remove(&key(account_id, contact_id));
        Ok(Some(out))
    }
}
