//! Conditional writes of many items in few requests: TransactWriteItems
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html>),
//! what lets a pull write 1,000 hub events and their mappings in about 20 requests instead
//! of 2,000 (issue 11: engine CPU goes mostly to per-request work).
//!
//! - BatchWriteItem cannot carry conditions, and every calsync write is conditional (hub
//!   events on their `version`, mappings on the lease's fence), so the batches are
//!   transactions: at most 100 actions and 4 MB a request, all or nothing. A transactional
//!   write costs two write units per KB instead of one.
//! - A hub event and the mapping that records it go into the same transaction: the pair
//!   is atomic (a crash cannot leave the event written and the mapping not).
//! - A cancelled transaction writes nothing; its `CancellationReasons` give one code per
//!   action, in request order (`None`, `ConditionalCheckFailed`, `TransactionConflict`,
//!   …). A failed hub-event condition loses its pair only (the caller plans it again); the
//!   rest is sent again. A failed fence is [`StoreError::Fenced`]. Anything else (another
//!   transaction on the same item, throttling) sends that transaction's writes one request
//!   each, as before, which the SDK retries individually.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::lease::FENCE_CONDITION;
use super::{n, Item, Store, StoreError};
use crate::model::{HubEvent, Mapping};

/// Actions per TransactWriteItems (DynamoDB's limit).
const TX_ITEMS: usize = 100;
/// Item bytes per TransactWriteItems: DynamoDB's 4 MB per request, less room for the
/// request's own names and expressions.
const TX_BYTES: usize = 3 * 1024 * 1024;
/// Requests for one transaction whose hub-event conditions keep failing before its
/// writes go one by one.
const TX_ATTEMPTS: usize = 3;

/// A hub event write and the mapping that records it, written together by
/// [`Store::put_pairs`].
#[derive(Debug, Clone, Copy)]
pub struct PairWrite<'a> {
    /// The hub event, and the `version` it must still be at (`None`: it must not exist
    /// yet), as [`Store::put_event`]; `None` when only the mapping changes.
    pub event: Option<(&'a HubEvent, Option<i64>)>,
    /// The mapping, fenced as [`Store::put_mapping`].
    pub mapping: &'a Mapping,
}

/// What a failed condition of one action means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// A hub event's version: another writer moved it; the pair is lost.
    Version,
    /// The lease's fence: the link was taken over; the whole write is refused.
    Fence,
}

/// One conditional put and what its condition guards.
pub(super) struct Action {
    put: Put,
    guard: Guard,
    bytes: usize,
}

/// How one transaction request ended.
enum Sent {
    Written,
    /// Cancelled: the positions (in the request) of actions whose condition failed, and
    /// whether any action was cancelled for another reason.
    Cancelled {
        failed: Vec<usize>,
        other: bool,
    },
}

impl Store {
    /// Write each pair (hub event and mapping) atomically, many pairs per request. For each
    /// pair, in order: `true` when written, `false` when its hub event was not at the
    /// expected version (nothing of that pair was written; the caller plans it again).
    ///
    /// Errors: [`StoreError::Fenced`] when the lease was taken over (what else was written
    /// stays), [`StoreError::TooLarge`] for a body without a bodies bucket, DynamoDB
    /// failures.
    pub async fn put_pairs(&self, pairs: &[PairWrite<'_>]) -> Result<Vec<bool>, StoreError> {
        let mut groups = Vec::with_capacity(pairs.len());
        for p in pairs {
            let mut g = Vec::with_capacity(2);
            if let Some((ev, expected)) = p.event {
                g.push(self.event_action(ev, expected).await?);
            }
            g.push(self.mapping_action(p.mapping).await?);
            groups.push(g);
        }
        self.transact(groups).await
    }

    /// Put `mappings` (each fenced as [`Store::put_mapping`]), many per request.
    ///
    /// Errors: as [`Store::put_pairs`].
    pub async fn put_mappings(&self, mappings: &[Mapping]) -> Result<(), StoreError> {
        let mut groups = Vec::with_capacity(mappings.len());
        for m in mappings {
            groups.push(vec![self.mapping_action(m).await?]);
        }
        self.transact(groups).await.map(|_| ())
    }

    /// The put of hub event `ev`, conditional as [`Store::put_event`].
    pub(super) async fn event_action(
        &self,
        ev: &HubEvent,
        expected: Option<i64>,
    ) -> Result<Action, StoreError> {
        let table = &self.cfg.events_table;
        let mut item = Self::to_item(table, ev)?;
        self.offload(table, &format!("{}/{}", ev.group_id, ev.uid), &mut item)
            .await?;
        let bytes = item_bytes(&item);
        let put = Put::builder().table_name(table).set_item(Some(item));
        let put = match expected {
            None => put
                .condition_expression("attribute_not_exists(#u)")
                .expression_attribute_names("#u", "uid"),
            Some(v) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        Ok(Action {
            put: built(table, put.build())?,
            guard: Guard::Version,
            bytes,
        })
    }

    /// The put of mapping `m`, fenced when this store is ([`Store::fenced`]).
    pub(super) async fn mapping_action(&self, m: &Mapping) -> Result<Action, StoreError> {
        let table = &self.cfg.mappings_table;
        let mut item = Self::to_item(table, m)?;
        self.offload(table, &format!("{}/{}", m.link_id, m.uid), &mut item)
            .await?;
        self.fenced_action(table, item)
    }

    /// The put of `item` into `table`, carrying this store's fence and refused when the
    /// item already carries a newer one ([`Store::fenced`]); unconditional without a fence.
    pub(super) fn fenced_action(&self, table: &str, mut item: Item) -> Result<Action, StoreError> {
        let mut put = Put::builder().table_name(table);
        if let Some(f) = self.fence {
            item.insert("fence".into(), n(f));
            put = put
                .condition_expression(FENCE_CONDITION)
                .expression_attribute_values(":f", n(f));
        }
        let bytes = item_bytes(&item);
        Ok(Action {
            put: built(table, put.set_item(Some(item)).build())?,
            guard: Guard::Fence,
            bytes,
        })
    }

    /// Write `groups` (each all or nothing), packed into transactions of at most
    /// [`TX_ITEMS`] actions and [`TX_BYTES`]; for each group whether it was written.
    async fn transact(&self, groups: Vec<Vec<Action>>) -> Result<Vec<bool>, StoreError> {
        let mut written = vec![false; groups.len()];
        let mut batch: Vec<(usize, Vec<Action>)> = Vec::new();
        let (mut items, mut bytes) = (0, 0);
        for (i, g) in groups.into_iter().enumerate() {
            let (gi, gb) = (g.len(), g.iter().map(|a| a.bytes).sum::<usize>());
            if !batch.is_empty() && (items + gi > TX_ITEMS || bytes + gb > TX_BYTES) {
                self.transact_one(std::mem::take(&mut batch), &mut written)
                    .await?;
                (items, bytes) = (0, 0);
            }
            (items, bytes) = (items + gi, bytes + gb);
            batch.push((i, g));
        }
        if !batch.is_empty() {
            self.transact_one(batch, &mut written).await?;
        }
        Ok(written)
    }

    /// One transaction of `batch` (group index, actions), sent again without the groups
    /// that lost their hub-event condition; set `written` for those it wrote.
    async fn transact_one(
        &self,
        mut batch: Vec<(usize, Vec<Action>)>,
        written: &mut [bool],
    ) -> Result<(), StoreError> {
        for _ in 0..TX_ATTEMPTS {
            if batch.is_empty() {
                return Ok(());
            }
            match self.send_transaction(&batch).await? {
                Sent::Written => {
                    for (i, _) in &batch {
                        written[*i] = true;
                    }
                    return Ok(());
                }
                Sent::Cancelled { failed, other } => {
                    let mut lost = vec![false; batch.len()];
                    let mut position = 0;
                    for (g, (_, actions)) in batch.iter().enumerate() {
                        for a in actions {
                            if failed.contains(&position) {
                                match a.guard {
                                    Guard::Fence => return Err(self.refused(table_of(a))),
                                    Guard::Version => lost[g] = true,
                                }
                            }
                            position += 1;
                        }
                    }
                    if !lost.contains(&true) && other {
                        break;
                    }
                    let mut keep = lost.into_iter();
                    batch.retain(|_| !keep.next().unwrap_or(false));
                }
            }
        }
        // Cancelled for reasons a condition does not explain (or again and again): the
        // writes one request each, a group stopping at its first failed condition.
        for (i, actions) in batch {
            written[i] = self.put_one_by_one(actions).await?;
        }
        Ok(())
    }

    async fn send_transaction(&self, batch: &[(usize, Vec<Action>)]) -> Result<Sent, StoreError> {
        let items: Vec<TransactWriteItem> = batch
            .iter()
            .flat_map(|(_, g)| g.iter())
            .map(|a| TransactWriteItem::builder().put(a.put.clone()).build())
            .collect();
        let table = batch
            .first()
            .and_then(|(_, g)| g.first())
            .map(table_of)
            .unwrap_or_default()
            .to_string();
        // The token makes the SDK's own retries of this request idempotent (DynamoDB
        // remembers it for 10 minutes).
        let res = self
            .ddb
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        match res {
            Ok(_) => Ok(Sent::Written),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    let mut failed = Vec::new();
                    let mut other = false;
                    for (i, r) in c.cancellation_reasons().iter().enumerate() {
                        match r.code() {
                            None | Some("None") => {}
                            Some("ConditionalCheckFailed") => failed.push(i),
                            Some(_) => other = true,
                        }
                    }
                    Ok(Sent::Cancelled { failed, other })
                }
                _ => Err(Self::aws_err("TransactWriteItems", &table, e)),
            },
        }
    }

    /// `actions` as one PutItem each, in order: `false` at the first failed hub-event
    /// condition (the rest not sent).
    pub(super) async fn put_one_by_one(&self, actions: Vec<Action>) -> Result<bool, StoreError> {
        for a in actions {
            let table = table_of(&a).to_string();
            let p = a.put;
            let req = self
                .ddb
                .put_item()
                .table_name(&table)
                .set_item(Some(p.item))
                .set_condition_expression(p.condition_expression)
                .set_expression_attribute_names(p.expression_attribute_names)
                .set_expression_attribute_values(p.expression_attribute_values);
            if !self.put_if(&table, req).await? {
                match a.guard {
                    Guard::Fence => return Err(self.refused(&table)),
                    Guard::Version => return Ok(false),
                }
            }
        }
        Ok(true)
    }
}

fn table_of(a: &Action) -> &str {
    a.put.table_name()
}

fn built(table: &str, r: Result<Put, impl std::fmt::Display>) -> Result<Put, StoreError> {
    r.map_err(|e| StoreError::Malformed {
        table: table.into(),
        reason: e.to_string(),
    })
}

/// An item's size as DynamoDB counts it, near enough to pack requests: attribute names
/// and values in bytes (numbers at their text length).
fn item_bytes(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

fn value_bytes(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(l) | AttributeValue::Ns(l) => l.iter().map(String::len).sum(),
        AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_bytes(v)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_bytes(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_s_size_counts_names_and_values() {
        let item = Item::from([
            ("uid".to_string(), AttributeValue::S("abc".into())),
            ("version".to_string(), AttributeValue::N("12".into())),
            ("ok".to_string(), AttributeValue::Bool(true)),
            (
                "m".to_string(),
                AttributeValue::M(Item::from([(
                    "k".to_string(),
                    AttributeValue::S("vv".into()),
                )])),
            ),
        ]);
        // uid+abc, version+12, ok+1, m + (3 + 1 + k + vv)
        assert_eq!(item_bytes(&item), 6 + 9 + 3 + 1 + 7);
    }
}
