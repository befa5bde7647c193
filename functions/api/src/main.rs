//! The application's API: API Gateway HTTP API requests (`/v1`, JWT) and AppSync direct
//! Lambda resolver events. Logic: [`calsync::api::router`], [`calsync::api::appsync`].
use calsync::api::{self, appsync};
use calsync::{config::Ctx, handlers};
use lambda_http::request::LambdaRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use tower::Service;

// One thread: a Lambda sandbox handles one invocation at a time, and a single-threaded
// runtime spends no CPU waking worker threads (docs/performance.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    handlers::init_tracing();
    let state = api::ApiState::from_env(Ctx::from_env());
    let state = &state;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        if appsync::is_appsync(&ev.payload) {
            return appsync::handle(state, ev.payload)
                .await
                .map_err(|problem| Error::from(problem.to_string()));
        }
        let req: LambdaRequest = serde_json::from_value(ev.payload)?;
        let mut http = lambda_http::Adapter::from(api::router(state.clone()));
        let resp = http
            .call(LambdaEvent::new(req, ev.context))
            .await
            .map_err(|e| Error::from(e.to_string()))?;
        Ok::<Value, Error>(serde_json::to_value(resp)?)
    }))
    .await
}
