//! Per-link pull (remote → hub) from the sync-jobs FIFO queue.
//! Logic: [`calsync::handlers::handle_sqs`].
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use calsync::{config::Ctx, handlers};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    handlers::init_tracing();
    let ctx = Ctx::from_env().await;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(
            handlers::handle_sqs_until(
                ctx,
                ev.payload,
                handlers::Direction::Pull,
                Some(handlers::deadline_from_epoch_ms(ev.context.deadline)),
            )
            .await,
        )
    }))
    .await
}
