//! `reminders`: three-stage deadline reminders, every 15 minutes. Wiring only.

use lambda_runtime::{Error, run, service_fn};
use nudge_shared::reminders::service::SCHEDULED;
use nudge_shared::{Deps, schedule, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let deps = Deps::from_env().await?;
    run(service_fn(|event| {
        schedule::handle(&SCHEDULED, &deps, event)
    }))
    .await
}
