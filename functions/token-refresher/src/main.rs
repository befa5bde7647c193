//! Token refresher (EventBridge schedule): refreshes Google tokens that expire soon, renews
//! push channels, stops orphaned ones. Logic: [`calsync::refresher::run`].
use calsync::{config::Ctx, handlers, refresher};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
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
