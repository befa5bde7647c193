//! AutoSync fan-out: EventBridge schedule or `{"field":"AutoSync",...}` → sync jobs.
//! Logic: [`calsync::handlers::autosync`].
use calsync::{config::Ctx, handlers};
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
        Ok::<Value, Error>(Box::pin(handlers::autosync(ctx, ev.payload)).await)
    }))
    .await
}
