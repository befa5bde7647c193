//! AWS calls counted per process and per run: every SDK client of [`crate::config::Clients`]
//! carries the [`AwsCallCounter`] interceptor, which counts each call in the process's
//! counter and, when the call is made inside [`AwsCallCounter::scope`], in that scope's
//! counter too. A run counts its own calls that way while the jobs of a batch run side by
//! side ([`crate::handlers::batch`]), and `make bench` prints the process's.
//!
//! Counted: each operation once per execution (its retries are the SDK's business, and AWS
//! bills the attempts that reached it, which a throttled run shows as failures), DynamoDB
//! items read as DynamoDB charges them (`ScannedCount` of a Query or Scan, not the items a
//! filter let through; the item of a GetItem; the items of a BatchGetItem) and items
//! written (one per PutItem / UpdateItem / DeleteItem, the requests of a BatchWriteItem, the
//! actions of a TransactWriteItems). Timed: each execution from its serialization to its
//! last attempt's end, summed per operation (calls that overlap are each counted whole), so
//! that a run's log can say where its wall time went.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// What the process's AWS clients did so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AwsCalls {
    /// Executions per `service:operation`, e.g. `DynamoDB:GetItem`.
    pub by_operation: BTreeMap<String, u64>,
    /// DynamoDB items read (see the module doc).
    pub ddb_items_read: u64,
    /// DynamoDB items written.
    pub ddb_items_written: u64,
    /// Milliseconds spent in executions per `service:operation` (see the module doc).
    pub ms_by_operation: BTreeMap<String, u64>,
}

/// An execution's `service:operation` and when it was serialized (in the operation's config
/// bag until it ends).
#[derive(Debug, Clone)]
struct Started(String, Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// `by` minus `earlier`, keeping the keys that grew.
fn grown(by: &BTreeMap<String, u64>, earlier: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    by.iter()
        .filter_map(|(op, n)| {
            let d = n.saturating_sub(earlier.get(op).copied().unwrap_or(0));
            (d > 0).then(|| (op.clone(), d))
        })
        .collect()
}

impl AwsCalls {
    /// Every operation executed.
    pub fn total(&self) -> u64 {
        self.by_operation.values().sum()
    }

    /// What happened after `earlier` (a snapshot of the same counter).
    pub fn since(&self, earlier: &AwsCalls) -> AwsCalls {
        AwsCalls {
            by_operation: grown(&self.by_operation, &earlier.by_operation),
            ms_by_operation: grown(&self.ms_by_operation, &earlier.ms_by_operation),
            ddb_items_read: self.ddb_items_read.saturating_sub(earlier.ddb_items_read),
            ddb_items_written: self
                .ddb_items_written
                .saturating_sub(earlier.ddb_items_written),
        }
    }

    /// `DynamoDB:GetItem 2, SQS:SendMessageBatch 1` (for logs and the benchmark).
    pub fn summary(&self) -> String {
        self.by_operation
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `DynamoDB:Query 40 in 9120 ms, SQS:SendMessage 1 in 12 ms`: each operation's
    /// executions and the milliseconds they took together.
    pub fn timed_summary(&self) -> String {
        self.by_operation
            .iter()
            .map(|(op, n)| {
                let ms = self.ms_by_operation.get(op).copied().unwrap_or(0);
                format!("{op} {n} in {ms} ms")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The interceptor and its counts; clone it into every client (they share the counts).
#[derive(Debug, Clone, Default)]
pub struct AwsCallCounter(Arc<Mutex<AwsCalls>>);

tokio::task_local! {
    /// The counter of the run whose future is being polled (see [`AwsCallCounter::scope`]).
    static RUN: AwsCallCounter;
}

impl AwsCallCounter {
    /// The counts so far.
    pub fn snapshot(&self) -> AwsCalls {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// `fut`, with every AWS call made while it is polled counted in `self` as well as in
    /// the clients' counter. A task that `fut` spawns is counted only when its future is
    /// wrapped in a scope too.
    pub fn scope<F: std::future::Future>(
        &self,
        fut: F,
    ) -> impl std::future::Future<Output = F::Output> {
        RUN.scope(self.clone(), fut)
    }

    fn add(&self, f: impl Fn(&mut AwsCalls)) {
        if let Ok(mut c) = self.0.lock() {
            f(&mut c);
        }
        let _ = RUN.try_with(|run| {
            if let Ok(mut c) = run.0.lock() {
                f(&mut c);
            }
        });
    }
}

fn operation(cfg: &ConfigBag) -> (String, String) {
    cfg.load::<Metadata>()
        .map(|m| (m.service().to_string(), m.name().to_string()))
        .unwrap_or_default()
}

impl Intercept for AwsCallCounter {
    fn name(&self) -> &'static str {
        "calsync-aws-call-counter"
    }

    // Not `read_before_execution`: a client's interceptors see that before the operation's
    // configuration (its `Metadata`) is in the bag.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
        let (service, op) = operation(cfg);
        let written = match op.as_str() {
            "PutItem" | "UpdateItem" | "DeleteItem" if service == "DynamoDB" => 1,
            "BatchWriteItem" => context
                .input()
                .downcast_ref::<BatchWriteItemInput>()
                .and_then(|i| i.request_items())
                .map(|m| m.values().map(|v| v.len() as u64).sum())
                .unwrap_or(0),
            "TransactWriteItems" => context
                .input()
                .downcast_ref::<TransactWriteItemsInput>()
                .map(|i| i.transact_items().len() as u64)
                .unwrap_or(0),
            _ => 0,
        };
        let key = format!("{service}:{op}");
        self.add(|c| {
            *c.by_operation.entry(key.clone()).or_default() += 1;
            c.ddb_items_written += written;
        });
        cfg.interceptor_state()
            .store_put(Started(key, Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemOutput, get_item::GetItemOutput, query::QueryOutput,
            scan::ScanOutput,
        };
        if let Some(Started(key, t)) = cfg.load::<Started>() {
            let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.add(|c| *c.ms_by_operation.entry(key.clone()).or_default() += ms);
        }
        let Some(Ok(out)) = context.output_or_error() else {
            return Ok(());
        };
        let read = if let Some(q) = out.downcast_ref::<QueryOutput>() {
            q.scanned_count().max(0) as u64
        } else if let Some(s) = out.downcast_ref::<ScanOutput>() {
            s.scanned_count().max(0) as u64
        } else if let Some(g) = out.downcast_ref::<GetItemOutput>() {
            u64::from(g.item().is_some())
        } else if let Some(b) = out.downcast_ref::<BatchGetItemOutput>() {
            b.responses()
                .map(|r| r.values().map(|v| v.len() as u64).sum())
                .unwrap_or(0)
        } else {
            0
        };
        if read > 0 {
            self.add(|c| c.ddb_items_read += read);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_keeps_what_grew() {
        let mut a = AwsCalls::default();
        a.by_operation.insert("DynamoDB:GetItem".into(), 2);
        a.ddb_items_read = 3;
        let mut b = a.clone();
        b.by_operation.insert("DynamoDB:GetItem".into(), 5);
        b.by_operation.insert("SQS:SendMessage".into(), 1);
        b.ddb_items_read = 10;
        b.ddb_items_written = 1;
        a.ms_by_operation.insert("DynamoDB:GetItem".into(), 20);
        b.ms_by_operation.insert("DynamoDB:GetItem".into(), 50);
        b.ms_by_operation.insert("SQS:SendMessage".into(), 7);
        let d = b.since(&a);
        assert_eq!(d.total(), 4);
        assert_eq!(d.summary(), "DynamoDB:GetItem 3, SQS:SendMessage 1");
        assert_eq!(
            d.timed_summary(),
            "DynamoDB:GetItem 3 in 30 ms, SQS:SendMessage 1 in 7 ms"
        );
        assert_eq!((d.ddb_items_read, d.ddb_items_written), (7, 1));
        assert_eq!(a.since(&a), AwsCalls::default());
    }
}
