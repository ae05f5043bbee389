//! The floor of `nudge bench`'s cold-start figures: a Lambda function that answers with its
//! event and does nothing else, built with the same runtime crate, async runtime and release
//! profile as the four functions, so their init time is compared with what any Rust function
//! pays before its own work.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

// One thread: an environment runs one invocation at a time, on one vCPU or less below
// 1,769 MB; a worker pool would only add wake-ups between threads (see `nudge bench`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
