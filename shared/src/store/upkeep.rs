//! What the token refresher reads: the links due for a look (an access token to refresh, a
//! push channel to renew or start), through the links table's sparse key-only GSI
//! `upkeep-index` (`due_shard`, `upkeep_at`: [`crate::model::Link::upkeep_at`]), so that a
//! run reads the links that are due and never the whole table (issue 11, "a fan-out that
//! holds at a million links"); and the marker of the one-time backfill that puts links
//! written before that index into it.
//!
//! The index projects keys only (`KEYS_ONLY`), so a link's other writes (every sync run
//! moves `next_sync_at`) never write to it; the links it names are then read by key
//! ([`Store::links_by_ids`]). A GSI is eventually consistent: the item read by key is the
//! truth.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;

use super::{n, s, Decode, Store, StoreError};
use crate::model::Link;

/// A key-only index item: the link and its `upkeep_at`.
#[derive(Deserialize)]
struct LinkKey {
    link_id: String,
    upkeep_at: i64,
}

/// The backfill marker: the names of the backfills that have completed (a string set).
#[derive(Deserialize)]
struct Marker {
    #[serde(default)]
    done: Vec<String>,
}

/// The key of the backfill marker in the leases table (no link id begins with `#`).
const BACKFILL_KEY: &str = "#backfill";

impl Store {
    /// The links in `shard` of `upkeep-index` whose `upkeep_at` is at or before `now`
    /// (epoch seconds, UTC), every page, as (`upkeep_at`, link id), earliest first.
    ///
    /// Errors: DynamoDB failure.
    pub async fn upkeep_due(&self, shard: u8, now: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let table = &self.cfg.links_table;
        let keys: Vec<LinkKey> = self
            .query_pages(table, Decode::Whole, |start| {
                self.ddb
                    .query()
                    .table_name(table)
                    .index_name("upkeep-index")
                    .key_condition_expression("due_shard = :s AND upkeep_at <= :now")
                    .expression_attribute_values(":s", n(i64::from(shard)))
                    .expression_attribute_values(":now", n(now))
                    .set_exclusive_start_key(start)
            })
            .await?;
        Ok(keys.into_iter().map(|k| (k.upkeep_at, k.link_id)).collect())
    }

    /// The links of `ids` (BatchGetItem, strongly consistent), in no particular order;
    /// ids without a link are left out.
    ///
    /// Errors: DynamoDB failure, or an item that is not a link.
    pub async fn links_by_ids(&self, ids: &[String]) -> Result<Vec<Link>, StoreError> {
        let table = &self.cfg.links_table;
        let keys = ids
            .iter()
            .map(|id| {
                (
                    table.clone(),
                    HashMap::from([("link_id".to_string(), s(id))]),
                )
            })
            .collect();
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(|(_, item)| Self::from_item(table, item))
            .collect()
    }

    /// Ask the refresher to look after the link at its next run: `upkeep_at` = `now`
    /// (epoch seconds, UTC).
    ///
    /// Errors: the link does not exist (conditional check) or DynamoDB fails.
    pub async fn want_upkeep(&self, link_id: &str, now: i64) -> Result<(), StoreError> {
        self.update_link_fields(link_id, vec![("upkeep_at", n(now))])
            .await
    }

    /// After the refresher looked after a link whose `upkeep_at` it read as `seen`: set it
    /// to `next` (`None`: remove it, and the link leaves the index), and with `token` the
    /// access token's new expiry ([`Link::token_expires_at`], epoch seconds) in the same
    /// write; unless `upkeep_at` changed meanwhile (a consent or a failed channel start
    /// asked for a sooner look, which stands) or the link is gone. `true`: written.
    ///
    /// Errors: DynamoDB failure.
    pub async fn set_upkeep(
        &self,
        link_id: &str,
        seen: Option<i64>,
        next: Option<i64>,
        token: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut req = self.update_link(link_id);
        req = match seen {
            Some(at) => req
                .condition_expression("upkeep_at = :seen")
                .expression_attribute_values(":seen", n(at)),
            None => req.condition_expression(
                "attribute_exists(link_id) AND attribute_not_exists(upkeep_at)",
            ),
        };
        let mut sets = Vec::new();
        if let Some(at) = next {
            sets.push("upkeep_at = :next");
            req = req.expression_attribute_values(":next", n(at));
        }
        if let Some(at) = token {
            sets.push("token_expires_at = :t");
            req = req.expression_attribute_values(":t", n(at));
        }
        let mut expr = String::new();
        if !sets.is_empty() {
            expr = format!("SET {}", sets.join(", "));
        }
        if next.is_none() {
            expr.push_str(" REMOVE upkeep_at");
        }
        req = req.update_expression(expr.trim());
        let written = Self::held("UpdateItem", &self.cfg.links_table, req.send().await)?;
        Ok(written.is_some())
    }

    /// Whether the backfill `name` has completed (a marker item in the leases table).
    ///
    /// Errors: DynamoDB failure.
    pub async fn backfill_done(&self, name: &str) -> Result<bool, StoreError> {
        let key = HashMap::from([("link_id".to_string(), s(BACKFILL_KEY))]);
        let marker: Option<Marker> = self.get(&self.cfg.leases_table, key).await?;
        Ok(marker.is_some_and(|m| m.done.iter().any(|d| d == name)))
    }

    /// Record that the backfill `name` has completed, or, with `done` false, that it has
    /// not (as on a stack deployed before it; for tests).
    ///
    /// Errors: DynamoDB failure.
    pub async fn set_backfill_done(&self, name: &str, done: bool) -> Result<(), StoreError> {
        let table = &self.cfg.leases_table;
        let op = if done { "ADD" } else { "DELETE" };
        self.ddb
            .update_item()
            .table_name(table)
            .key("link_id", s(BACKFILL_KEY))
            .update_expression(format!("{op} done :d"))
            .expression_attribute_values(":d", AttributeValue::Ss(vec![name.to_string()]))
            .send()
            .await
            .map_err(|e| Self::aws_err("UpdateItem", table, e))?;
        Ok(())
    }
}
