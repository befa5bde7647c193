//! Webhook receiver (API Gateway HTTP API): push notifications (`/webhooks/{provider}`) and
//! the OAuth consent begin and redirect. Logic: [`calsync::http_api::route`].
use calsync::{config::Ctx, handlers, http_api};
use lambda_http::{service_fn, Body, Error, Request, Response};

// One thread: a Lambda sandbox handles one invocation at a time, and a single-threaded
// runtime spends no CPU waking worker threads (docs/performance.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    handlers::init_tracing();
    let ctx = Ctx::from_env();
    let ctx = &ctx;
    lambda_http::run(service_fn(move |req: Request| async move {
        let (parts, body) = req.into_parts();
        let req = http_api::HttpRequest {
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            method: parts.method,
            headers: parts.headers,
            body: body.to_vec(),
        };
        let a = http_api::route(ctx, req).await;
        let mut resp = Response::builder().status(a.status);
        for (name, value) in a.headers {
            resp = resp.header(name, value);
        }
        Ok::<_, Error>(resp.body(Body::from(a.body))?)
    }))
    .await
}
