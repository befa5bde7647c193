//! The local stack keeps what DynamoDB guarantees to calsync's leases: a conditional write is
//! atomic, so of many concurrent acquirers of one lease exactly one holds it. Every lease
//! (a link's sync run, a token refresh) rests on this.
//!
//! moto serves each request on a thread of its own and checks a condition and applies the
//! write without a lock; `infra/local/moto_server.py` applies DynamoDB requests one at a
//! time. The race needs a thread switch between the check and the write, which an idle
//! machine rarely makes and a loaded CI machine sometimes does (a token refreshed twice for
//! eight callers). The test runs the local stack's moto server with Python's thread switch
//! interval at a microsecond, where without that lock about a third of the rounds had two
//! holders. Needs the project virtualenv (`make test` makes it); not the running stack.

use std::time::Duration;

/// Rounds of eight concurrent acquirers.
const ROUNDS: usize = 100;

/// The local stack's moto server (`infra/local/moto_server.py`) on `port`, its threads
/// switched every microsecond.
fn moto_switching_often(port: u16) -> tokio::process::Child {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let script = format!(
        "import sys, runpy\n\
         sys.setswitchinterval(1e-6)\n\
         sys.argv = ['moto_server.py', '-H', '127.0.0.1', '-p', '{port}']\n\
         runpy.run_path('{root}/infra/local/moto_server.py', run_name='__main__')\n"
    );
    tokio::process::Command::new(format!("{root}/.venv/bin/python"))
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the project virtualenv's python (make venv)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_acquirers_of_a_lease_get_one_holder() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _moto = moto_switching_often(port);
    let endpoint = format!("http://127.0.0.1:{port}");
    // Ready when it answers (a minute at most).
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..600 {
        if http
            .get(format!("{endpoint}/moto-api/"))
            .send()
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "moto did not start on {endpoint}");

    let mut ctx = calsync_e2e::local_ctx().await;
    let sdk = calsync::config::sdk_config(
        Some(&endpoint),
        Some("us-east-1"),
        aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "leases"),
    );
    ctx.clients.ddb = aws_sdk_dynamodb::Client::new(&sdk);
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    ctx.clients
        .ddb
        .create_table()
        .table_name(&ctx.config.leases_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("link_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("link_id")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("leases table");

    let mut not_one = Vec::new();
    for round in 0..ROUNDS {
        let key = format!("lease-race:{round}");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let mut set = tokio::task::JoinSet::new();
        for who in 0..8 {
            let (store, key, barrier) = (ctx.store(), key.clone(), barrier.clone());
            set.spawn(async move {
                barrier.wait().await;
                store
                    .acquire_lease(&key, &format!("owner-{who}"), 60)
                    .await
                    .expect("acquire")
                    .is_some()
            });
        }
        let mut holders = 0;
        while let Some(held) = set.join_next().await {
            holders += usize::from(held.expect("task"));
        }
        if holders != 1 {
            not_one.push((round, holders));
        }
    }
    assert!(
        not_one.is_empty(),
        "rounds (round, holders) where the lease did not have exactly one holder: {not_one:?}"
    );
}
