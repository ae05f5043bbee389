//! `health`: the daily health score. Its schedule walks the account index and queues work;
//! the same function, fed by its SQS queue, scores the accounts. Wiring only.

use lambda_runtime::{Error, run, service_fn};
use nudge_shared::deps::Secrets;
use nudge_shared::{Deps, registry, telemetry};

// One thread: an environment runs one invocation at a time, on one vCPU or less below
// 1,769 MB; a worker pool would only add wake-ups between threads (see `nudge bench`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let feature = registry::find("health").ok_or("health is not in the registry")?;
    let deps = Deps::from_env_with_sqs(Secrets::NONE).await?;
    run(service_fn(|event| {
        registry::handle_any(feature, &deps, event)
    }))
    .await
}
