//! The pause notice: when a customer replies, automation for the account stops and the CSM is
//! told at once (a person takes over).

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::warn;

use crate::Deps;
use crate::delivery::{DeliveryError, deliver_new};
use crate::domain::log::rfc3339_seconds;
use crate::domain::{Nudge, NudgeKind};
use crate::events::Event;
use crate::registry;
use crate::store::{Applied, StoreError};

/// After `customer_replied`: tell the CSM that automation for the account stopped. The notice
/// (`paused:<event_id>`, planned by `ingest`) is recorded, then delivered at once; if that send
/// fails it stays pending and the next sweep retries it. A replayed or retried event records
/// nothing new. Only a failure to record the notice is an error (the event is then retried by
/// the client).
pub async fn notify_paused(
    deps: &Deps,
    event: &Event,
    applied: Applied,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = event.occurred_at_utc();
    if applied == Applied::Stale {
        // Stale is also what a retry of this very event sees: notify only if this event is
        // still the one that paused the account (a later resume wins).
        let current = deps.store.account(&event.account_id).await?;
        if !current.is_some_and(|a| a.paused && a.paused_at == Some(at)) {
            return Ok(());
        }
    }
    let nudge = Nudge::new(
        format!("paused:{}", event.event_id),
        &event.account_id,
        event.contact_id.clone(),
        NudgeKind::AutomationPaused,
        at,
        "ingest",
        now,
    )
    .with_vars(json!({ "paused_at": rfc3339_seconds::format(&at) }));
    let run_id = format!("ingest:{}:{}", event.event_id, now.timestamp_millis());
    match deliver_new(deps, registry::render_vars, &nudge, now, &run_id).await {
        Ok(_) => Ok(()),
        Err(DeliveryError::Store(e)) if !deps_has_nudge(deps, &nudge).await => Err(e),
        Err(e) => {
            warn!(account_id = %event.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, error = %e, "pause notice not sent now; the next sweep will retry");
            Ok(())
        }
    }
}

async fn deps_has_nudge(deps: &Deps, nudge: &Nudge) -> bool {
    matches!(
        deps.store.nudge(&nudge.account_id, &nudge.nudge_id).await,
        Ok(Some(_))
    )
}
