//! The application's API (API Gateway HTTP API, `/v1`). Logic: [`calsync::api::router`].
use calsync::{api, config::Ctx, handlers};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    handlers::init_tracing();
    let state = api::ApiState::from_env(Ctx::from_env().await);
    lambda_http::run(api::router(state)).await
}
