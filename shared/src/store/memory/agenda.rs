//! `AgendaStore` in memory: tasks kept after they are finished, like the table's items.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, ms, request};
use crate::store::{AgendaStore, AgendaTask, StoreError};

#[async_trait]
impl AgendaStore for MemoryStore {
    async fn schedule_task(&self, task: &AgendaTask, _shards: u32) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let key = (task.account_id.clone(), task.task.clone());
        if s.agenda.contains_key(&key) {
            return Ok(false);
        }
        s.agenda.insert(key, (ms(task.due_at), None));
        Ok(true)
    }

    async fn due_tasks(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        _shards: u32,
    ) -> Result<Vec<AgendaTask>, StoreError> {
        request().await;
        let s = self.lock();
        let mut out: Vec<AgendaTask> = s
            .agenda
            .iter()
            .filter(|(_, (due, done))| done.is_none() && *due >= ms(from) && *due <= until)
            .map(|((account_id, task), (due, _))| AgendaTask {
                account_id: account_id.clone(),
                task: task.clone(),
                due_at: *due,
            })
            .collect();
        out.sort_by(|a, b| {
            (a.due_at, &a.account_id, &a.task).cmp(&(b.due_at, &b.account_id, &b.task))
        });
        Ok(out)
    }

    async fn finish_task(
        &self,
        account_id: &str,
        task: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        request().await;
        let mut s = self.lock();
        if let Some((_, done)) = s
            .agenda
            .get_mut(&(account_id.to_string(), task.to_string()))
        {
            done.get_or_insert(ms(at));
        }
        Ok(())
    }
}
