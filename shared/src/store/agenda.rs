//! The agenda: scheduled feature work per account (the onboarding program's welcome and weekly
//! checks), found by time, so a run's cost follows the tasks due, not the accounts stored.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// One task of one account, due at `due_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaTask {
    pub account_id: String,
    /// The feature's name for it (`welcome`, `check_07`): one per account, ever.
    pub task: String,
    pub due_at: DateTime<Utc>,
}

#[async_trait]
pub trait AgendaStore: Send + Sync {
    /// Schedules a task unless the account has (or had) it: false if it exists. A finished task
    /// stays, so scheduling it again (a replayed `account_upserted`) does nothing.
    async fn schedule_task(&self, task: &AgendaTask, shards: u32) -> Result<bool, StoreError>;
    /// Unfinished tasks due in `from..=until`, by due time.
    async fn due_tasks(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        shards: u32,
    ) -> Result<Vec<AgendaTask>, StoreError>;
    /// Marks a task done (idempotent).
    async fn finish_task(
        &self,
        account_id: &str,
        task: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}
