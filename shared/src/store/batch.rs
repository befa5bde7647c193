//! Reads by key and through the mappings' key-only indexes: what lets a pull or a push read
//! the items of the events that changed instead of every mapping and hub event (issue 11,
//! "one change among N").
//!
//! - [`Store::batch_get`]: BatchGetItem, strongly consistent, at most 100 keys a request
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html>),
//!   unprocessed keys asked for again.
//! - The mappings table's GSIs `href-index` (`link_id`, `href`) and `written-index`
//!   (`link_id`, `updated_ms`) project keys only (`KEYS_ONLY`: a few bytes per mapping
//!   write); the mappings they name are then read from the table itself, strongly
//!   consistent. A GSI is eventually consistent (typically well under a second): these
//!   lookups serve incremental pulls, which a schedule or a notification starts well after
//!   the writes they look for.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{KeysAndAttributes, Select};
use futures_util::{StreamExt, TryStreamExt};

use super::{event_key, n, s, Item, Store, StoreError};
use crate::model::{HubEvent, Mapping};
use crate::provider::RemoteId;

/// Keys per BatchGetItem request (DynamoDB's limit).
const BATCH_KEYS: usize = 100;
/// Index lookups in flight at once.
const LOOKUPS_IN_FLIGHT: usize = 16;

impl Store {
    /// The items of `keys` (table, key), in no particular order, strongly consistent; keys
    /// without an item are left out. Bodies kept in S3 are read back.
    ///
    /// Errors: DynamoDB failure, or keys still unprocessed after 5 requests.
    pub(super) async fn batch_get(
        &self,
        keys: Vec<(String, Item)>,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_KEYS) {
            let mut ask: HashMap<String, KeysAndAttributes> = HashMap::new();
            let mut by_table: HashMap<&str, Vec<Item>> = HashMap::new();
            for (table, key) in chunk {
                by_table.entry(table).or_default().push(key.clone());
            }
            for (table, keys) in by_table {
                let k = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Malformed {
                        table: table.into(),
                        reason: e.to_string(),
                    })?;
                ask.insert(table.into(), k);
            }
            let first = chunk.first().map(|(t, _)| t.clone()).unwrap_or_default();
            for _ in 0..5 {
                let resp = self
                    .ddb
                    .batch_get_item()
                    .set_request_items(Some(ask))
                    .send()
                    .await
                    .map_err(|e| Self::aws_err("BatchGetItem", &first, e))?;
                for (table, items) in resp.responses.unwrap_or_default() {
                    for mut item in items {
                        self.hydrate(&table, &mut item).await?;
                        out.push((table.clone(), item));
                    }
                }
                ask = resp.unprocessed_keys.unwrap_or_default();
                if ask.is_empty() {
                    break;
                }
            }
            if !ask.is_empty() {
                return Err(StoreError::Malformed {
                    table: first,
                    reason: "BatchGetItem left keys unprocessed 5 times".into(),
                });
            }
        }
        Ok(out)
    }

    /// The mappings of `link_id` for `uids` and, with `group_id`, the hub events of the same
    /// UIDs, in BatchGetItem requests of 100 keys.
    ///
    /// Errors: DynamoDB failure; a malformed item.
    pub async fn mappings_and_events(
        &self,
        link_id: &str,
        group_id: Option<&str>,
        uids: &[String],
    ) -> Result<(Vec<Mapping>, Vec<HubEvent>), StoreError> {
        let (maps_t, events_t) = (&self.cfg.mappings_table, &self.cfg.events_table);
        let mut keys = Vec::new();
        for uid in uids {
            keys.push((
                maps_t.clone(),
                HashMap::from([("link_id".into(), s(link_id)), ("uid".into(), s(uid))]),
            ));
            if let Some(g) = group_id {
                keys.push((events_t.clone(), event_key(g, uid)));
            }
        }
        let (mut maps, mut events) = (Vec::new(), Vec::new());
        for (table, item) in self.batch_get(keys).await? {
            if &table == maps_t {
                maps.push(Self::from_item(&table, item)?);
            } else {
                events.push(Self::from_item(&table, item)?);
            }
        }
        Ok((maps, events))
    }

    /// The hub events of `group_id` with these `uids` (tombstones too; a UID with no event
    /// is left out), in BatchGetItem requests of 100 keys.
    ///
    /// Errors: DynamoDB failure; a malformed item.
    pub async fn events_of_uids(
        &self,
        group_id: &str,
        uids: &[String],
    ) -> Result<Vec<HubEvent>, StoreError> {
        let table = &self.cfg.events_table;
        let keys = uids
            .iter()
            .map(|uid| (table.clone(), event_key(group_id, uid)))
            .collect();
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(|(t, item)| Self::from_item(&t, item))
            .collect()
    }

    /// The UIDs `link_id` maps to `hrefs` (GSI `href-index`, one Query per href, 16 at a
    /// time); hrefs no mapping names are left out.
    ///
    /// Errors: DynamoDB failure.
    pub async fn uids_of_hrefs(
        &self,
        link_id: &str,
        hrefs: &[&RemoteId],
    ) -> Result<Vec<String>, StoreError> {
        let table = &self.cfg.mappings_table;
        let found: Vec<Vec<String>> = futures_util::stream::iter(hrefs.iter().map(|h| {
            let req = self
                .ddb
                .query()
                .table_name(table)
                .index_name("href-index")
                .key_condition_expression("link_id = :l AND href = :h")
                .expression_attribute_values(":l", s(link_id))
                .expression_attribute_values(":h", s(h.as_ref()));
            async move {
                let resp = req
                    .send()
                    .await
                    .map_err(|e| Self::aws_err("Query", table, e))?;
                Ok::<_, StoreError>(uids_in(resp.items.unwrap_or_default()))
            }
        }))
        .buffer_unordered(LOOKUPS_IN_FLIGHT)
        .try_collect()
        .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The UIDs of the mappings of `link_id` written after `after_ms` (epoch ms, GSI
    /// `written-index`).
    ///
    /// Errors: DynamoDB failure.
    pub async fn uids_written_after(
        &self,
        link_id: &str,
        after_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let table = &self.cfg.mappings_table;
        let keys: Vec<MappingKey> = self
            .query_pages(table, super::Decode::Whole, |start| {
                self.ddb
                    .query()
                    .table_name(table)
                    .index_name("written-index")
                    .key_condition_expression("link_id = :l AND updated_ms > :t")
                    .expression_attribute_values(":l", s(link_id))
                    .expression_attribute_values(":t", n(after_ms))
                    .set_exclusive_start_key(start)
            })
            .await?;
        Ok(keys.into_iter().map(|k| k.uid).collect())
    }

    /// How many mappings of `link_id` name a remote object (a Query of `href-index`, which
    /// holds only those, with `Select=COUNT`: no items are returned, though DynamoDB bills
    /// the items it counts).
    ///
    /// Errors: DynamoDB failure.
    pub async fn count_mappings(&self, link_id: &str) -> Result<usize, StoreError> {
        let table = &self.cfg.mappings_table;
        let mut count = 0usize;
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .ddb
                .query()
                .table_name(table)
                .index_name("href-index")
                .key_condition_expression("link_id = :l")
                .expression_attribute_values(":l", s(link_id))
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Self::aws_err("Query", table, e))?;
            count += resp.count.max(0) as usize;
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(count),
            }
        }
    }
}

/// A mapping's key as a key-only index returns it (the other key attributes are ignored).
#[derive(serde::Deserialize)]
struct MappingKey {
    uid: String,
}

/// The `uid` attributes of index items.
fn uids_in(items: Vec<Item>) -> Vec<String> {
    items
        .into_iter()
        .filter_map(|mut i| match i.remove("uid") {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(u)) => Some(u),
            _ => None,
        })
        .collect()
}
