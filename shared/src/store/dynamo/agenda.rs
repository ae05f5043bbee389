//! `AgendaStore`: `ACCT#<id>/TASK#<task>` items, on the `due` index under
//! `AGENDA#<hour>#<shard>` until finished (the GSI keys are then removed; the item stays, so
//! the task is never scheduled twice).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Duration, Utc};

use super::{DynamoStore, Item, get_s, get_ts, s, ts, ts_str};
use crate::store::schema::{self, GSI1PK, GSI1SK, PK, SK};
use crate::store::{AgendaStore, AgendaTask, StoreError};

/// The hour buckets from `from` to `until`, both included.
fn buckets(from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = from;
    while at <= until {
        out.push(schema::task_bucket(at));
        at += Duration::hours(1);
    }
    let last = schema::task_bucket(until);
    if from <= until && out.last() != Some(&last) {
        out.push(last);
    }
    out
}

fn task_from_item(item: &Item) -> Option<AgendaTask> {
    let account_id = get_s(item, PK)?.strip_prefix("ACCT#")?.to_string();
    let task = get_s(item, SK)?.strip_prefix("TASK#")?.to_string();
    Some(AgendaTask {
        account_id,
        task,
        due_at: get_ts(item, "due_at")?,
    })
}

#[async_trait]
impl AgendaStore for DynamoStore {
    async fn schedule_task(&self, task: &AgendaTask, shards: u32) -> Result<bool, StoreError> {
        let pk = schema::account_pk(&task.account_id);
        let sk = schema::task_sk(&task.task);
        let gpk = schema::task_partition(task.due_at, &format!("{pk}/{sk}"), shards);
        let gsk = format!("{}#{pk}#{sk}", ts_str(task.due_at));
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(&sk))
            .item("due_at", ts(task.due_at))
            .item(GSI1PK, s(gpk))
            .item(GSI1SK, s(gsk))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        Ok(self.conditional(req.send().await)?.is_some())
    }

    async fn due_tasks(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        shards: u32,
    ) -> Result<Vec<AgendaTask>, StoreError> {
        let lower = ts_str(from);
        // '~' sorts after every character of a key: every due_at <= until matches.
        let upper = format!("{}#~", ts_str(until));
        let partitions: Vec<String> = buckets(from, until)
            .into_iter()
            .flat_map(|b| (0..shards.max(1)).map(move |sh| format!("AGENDA#{b}#{sh}")))
            .collect();
        let items = self
            .query_due_partitions(partitions, Some(&lower), &upper)
            .await?;
        let mut out: Vec<AgendaTask> = items
            .iter()
            .filter_map(|item| {
                let t = task_from_item(item);
                if t.is_none() {
                    tracing::error!("skipping a corrupt agenda task item");
                }
                t
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
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::task_sk(task)))
            .update_expression("SET done_at = if_not_exists(done_at, :t) REMOVE #gpk, #gsk")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#gpk", GSI1PK)
            .expression_attribute_names("#gsk", GSI1SK)
            .expression_attribute_values(":t", ts(at))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.conditional(req.send().await)?;
        Ok(())
    }
}
