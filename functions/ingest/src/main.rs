//! `ingest`: product events over the HTTP API, SES feedback over SNS. Wiring only.

use lambda_runtime::{Error, run, service_fn};
use nudge_shared::deps::Secrets;
use nudge_shared::{Deps, ingest::lambda::Ingest, telemetry};

// One thread: an environment runs one invocation at a time, on one vCPU or less below
// 1,769 MB; a worker pool would only add wake-ups between threads (see `nudge bench`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = Ingest::new(Deps::from_env(Secrets::ALL).await?);
    run(service_fn(|event| app.handle(event))).await
}
