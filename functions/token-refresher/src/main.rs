//! Token refresher (EventBridge schedule): refreshes Google tokens that expire soon, renews
//! push channels, stops orphaned ones. Logic: [`calsync::refresher::run`].
use calsync::{config::Ctx, handlers, refresher};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One thread: a Lambda sandbox handles one invocation at a time, and a single-threaded
// runtime spends no CPU waking worker threads (docs/performance.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    handlers::init_tracing();
    let ctx = Ctx::from_env().await;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let report = refresher::run(ctx).await?;
        Ok::<Value, Error>(serde_json::to_value(report)?)
    }))
    .await
}
