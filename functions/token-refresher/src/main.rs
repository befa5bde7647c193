//! Token refresher (EventBridge schedule): looks after the links that are due, refreshing
//! OAuth tokens that expire soon and starting, renewing or stopping push channels, until
//! shortly before the invocation's deadline. Logic: [`calsync::refresher::run_until`].
use calsync::{config::Ctx, handlers, refresher};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One thread: a Lambda sandbox handles one invocation at a time, and a single-threaded
// runtime spends no CPU waking worker threads (docs/performance.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    handlers::init_tracing();
    let ctx = Ctx::from_env();
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let deadline = handlers::deadline_from_epoch_ms(ev.context.deadline);
        let report = refresher::run_until(ctx, Some(deadline)).await?;
        Ok::<Value, Error>(serde_json::to_value(report)?)
    }))
    .await
}
