//! Local stack support shared by the integration tests, the demo (`make run`) and the
//! benchmark (`make bench`): the queue runner, a local ICS feed server and fixtures.
//!
//! Addresses (see `infra/local/stack.sh`): moto `127.0.0.1:4566`, Radicale `127.0.0.1:5232`,
//! Xandikos `127.0.0.1:8080`; feeds on an ephemeral loopback port.

pub mod accounts;
pub mod api;
pub mod bench;
pub mod browser;
pub mod demo;
pub mod emulators;
pub mod feed;
pub mod fixtures;
pub mod google;
pub mod issuer;
pub mod logs;
pub mod notifications;
pub mod outlook;
pub mod quirks;
pub mod runner;
pub mod serve;
pub mod soak;

use calsync::config::{Clients, Config, Ctx};

/// The networks the local stack admits for outbound requests (`CALSYNC_ALLOW_NETS`).
pub const LOCAL_ALLOW_NETS: &str = "127.0.0.1/32";

/// The local stack's environment variables and their defaults (the Makefile exports the
/// same): moto at `http://127.0.0.1:4566`, region `us-east-1`, test credentials,
/// [`LOCAL_ALLOW_NETS`].
const LOCAL_DEFAULTS: [(&str, &str); 5] = [
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("CALSYNC_ALLOW_NETS", LOCAL_ALLOW_NETS),
];

/// Variable `name` as this process has it, else its local stack default (empty for a
/// variable the local stack has no default for).
pub fn local_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        LOCAL_DEFAULTS
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, d)| d.to_string())
            .unwrap_or_default()
    })
}

/// The local stack's environment as `(name, value)` pairs ([`local_var`] of each). For the
/// processes a test starts as Lambda would (the function binaries), so that a test run by
/// plain `cargo test`, without the Makefile's exports, starts them right too.
pub fn local_env() -> Vec<(&'static str, String)> {
    LOCAL_DEFAULTS
        .iter()
        .map(|(k, _)| (*k, local_var(k)))
        .collect()
}

/// The outbound policy of the local stack: `CALSYNC_ALLOW_NETS`, else [`LOCAL_ALLOW_NETS`]
/// (the local stack's servers all listen on 127.0.0.1; tests use 127.0.0.2 as a forbidden
/// target).
pub fn local_net_policy() -> calsync::net::NetPolicy {
    calsync::net::NetPolicy::parse(&local_var("CALSYNC_ALLOW_NETS"))
}

/// Context for the local stack: the standard AWS environment, with moto at
/// `127.0.0.1:4566`, region `us-east-1` and test credentials where it sets nothing.
pub async fn local_ctx() -> Ctx {
    let endpoint = local_var("AWS_ENDPOINT_URL");
    let region = local_var("AWS_REGION");
    // The functions' own configuration (`calsync::config::sdk_config`), with moto's test
    // credentials where the environment has none.
    use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
    let credentials = if std::env::var("AWS_ACCESS_KEY_ID").is_ok() {
        SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
    } else {
        SharedCredentialsProvider::new(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "calsync-local",
        ))
    };
    let sdk = calsync::config::sdk_config(Some(&endpoint), Some(&region), credentials);
    let policy = local_net_policy();
    let mut config = Config::from_env();
    if config.bodies_bucket.is_none() {
        config.bodies_bucket = Some(local_bodies_bucket(&config.stack, &region));
    }
    Ctx {
        config,
        clients: Clients::with_net_policy(&sdk, policy),
    }
}

/// The template's `BodiesBucket` (`<stack>-bodies-<account>-<region>`) on the local stack,
/// whose account is moto's default, 123456789012.
pub fn local_bodies_bucket(stack: &str, region: &str) -> String {
    format!("{stack}-bodies-123456789012-{region}")
}

/// Delete every link and push channel record whose calendar URL begins with `prefix` (an
/// emulator's address), so that what outlives a test on the shared stack does not try a
/// port nothing listens on any more: the jobs still queued for its links end as an unknown
/// link, and the token refresher finds no channel of it to renew or stop (each of those
/// would retry for the provider's whole backoff, about 30 s, in a later test). For the
/// emulator helpers' `Drop`: runs on a thread of its own with a context of its own (a
/// `Drop` cannot await, and the caller's runtime is blocked meanwhile); failures are
/// logged only.
pub fn forget_links_at(prefix: &str) {
    // `http://127.0.0.1:4317/`, not a prefix of port 43173's links.
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let run = move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let ctx = local_ctx().await;
            let store = ctx.store();
            for id in ids_at(&ctx, &ctx.config.links_table, "link_id", &prefix).await? {
                store.delete_link(&id).await?;
            }
            for id in ids_at(&ctx, &ctx.config.channels_table, "channel_id", &prefix).await? {
                store.delete_channel(&id).await?;
            }
            Ok(())
        })
    };
    match std::thread::spawn(run).join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the emulator's links were not deleted"),
        Err(_) => tracing::warn!("deleting the emulator's links panicked"),
    }
}

/// The `key` of every item of `table` whose `url` begins with `prefix` (a Scan).
async fn ids_at(ctx: &Ctx, table: &str, key: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut start = None;
    let mut ids = Vec::new();
    loop {
        let page = ctx
            .clients
            .ddb
            .scan()
            .table_name(table)
            .filter_expression("begins_with(#u, :p)")
            .expression_attribute_names("#u", "url")
            .expression_attribute_values(":p", AttributeValue::S(prefix.to_string()))
            .projection_expression(key)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        ids.extend(
            page.items()
                .iter()
                .filter_map(|i| i.get(key)?.as_s().ok().cloned()),
        );
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(ids);
        }
    }
}
