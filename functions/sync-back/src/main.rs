//! Per-link push (hub → remote) from the sync-back FIFO queue.
//! Logic: [`calsync::handlers::handle_sqs`].
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use calsync::{config::Ctx, handlers};
use lambda_runtime::{service_fn, Error, LambdaEvent};

// One thread: a Lambda sandbox handles one invocation at a time, and a single-threaded
// runtime spends no CPU waking worker threads (docs/performance.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    handlers::init_tracing();
    let ctx = Ctx::from_env();
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(
            handlers::handle_sqs_until(
                ctx,
                ev.payload,
                handlers::Direction::Push,
                Some(handlers::deadline_from_epoch_ms(ev.context.deadline)),
            )
            .await,
        )
    }))
    .await
}
