//! The store operations behind the application's API ([`crate::api`]): groups, pages of hub
//! events, the change feed, run history, conflicts, link settings and Idempotency-Key
//! records. Pages are keyset pages: a page ends with the key to continue after.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{n, s, Item, Store, StoreError};
use crate::model::{EventStatus, Group, HubEvent, Link, Mapping, RunRecord};

/// One page of items and the key to continue after (`None`: this was the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// Sort key of the last item when more may follow.
    pub next: Option<String>,
}

/// Position in a group's change feed: changes strictly after (`updated_ms`, `uid`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCursor {
    /// Epoch milliseconds (UTC) of the last change seen.
    pub ms: i64,
    /// UID of the last change seen at `ms` (empty: none yet at that instant).
    pub uid: String,
}

/// Whether [`Store::read_changes`] reads the millisecond of the limit-th change whole.
#[derive(Debug, Clone, Copy)]
struct WholeMillisecond(bool);

/// The answer kept for an `Idempotency-Key` (24 h): a replay gets the same answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// `<user id>|<method> <path>|<key>`.
    pub key: String,
    /// SHA-256 (hex) of the request body: the same key with another body is refused.
    pub request_sha256: String,
    /// HTTP status of the first answer.
    pub status: u16,
    /// `content-type` of the first answer.
    pub content_type: String,
    /// Body of the first answer.
    pub body: String,
    /// TTL (epoch seconds).
    pub expires_at: i64,
}

impl Store {
    // ---- groups ----

    /// Create or replace a group.
    pub async fn put_group(&self, g: &Group) -> Result<(), StoreError> {
        self.put(&self.cfg.groups_table, g).await
    }

    /// One group by id.
    pub async fn get_group(&self, group_id: &str) -> Result<Option<Group>, StoreError> {
        let key = HashMap::from([("group_id".to_string(), s(group_id))]);
        self.get(&self.cfg.groups_table, key).await
    }

    /// The groups of an application user (GSI `user-index`).
    pub async fn groups_of_user(&self, user_id: i64) -> Result<Vec<Group>, StoreError> {
        self.query_all(
            &self.cfg.groups_table,
            Some("user-index"),
            "user_id",
            n(user_id),
        )
        .await
    }

    /// Forget a group record (its links and events are removed by the caller).
    pub async fn delete_group(&self, group_id: &str) -> Result<(), StoreError> {
        let key = HashMap::from([("group_id".to_string(), s(group_id))]);
        self.delete(&self.cfg.groups_table, key).await?;
        Ok(())
    }

    /// Remove a hub event item for good (group deletion; tombstones are kept otherwise).
    pub async fn purge_event(&self, group_id: &str, uid: &str) -> Result<(), StoreError> {
        let key = HashMap::from([
            ("group_id".to_string(), s(group_id)),
            ("uid".to_string(), s(uid)),
        ]);
        let old = self.delete(&self.cfg.events_table, key).await?;
        self.forget_bodies(old.as_ref()).await;
        Ok(())
    }

    // ---- links ----

    /// Remove a link item.
    pub async fn delete_link(&self, link_id: &str) -> Result<(), StoreError> {
        let key = HashMap::from([("link_id".to_string(), s(link_id))]);
        self.delete(&self.cfg.links_table, key).await?;
        Ok(())
    }

    /// Set some attributes of an existing link (`SET a = :a, ...`), leaving the others (status,
    /// cursors, counters written by workers) as they are.
    ///
    /// Errors: the link does not exist (conditional check) or DynamoDB fails.
    pub async fn update_link_fields(
        &self,
        link_id: &str,
        fields: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        let table = &self.cfg.links_table;
        let mut req = self
            .update_link(link_id)
            .condition_expression("attribute_exists(link_id)");
        let mut sets = Vec::new();
        for (i, (name, value)) in fields.into_iter().enumerate() {
            sets.push(format!("#f{i} = :f{i}"));
            req = req
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":f{i}"), value);
        }
        req.update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(|e| Self::aws_err("UpdateItem", table, e))?;
        Ok(())
    }

    /// A link attribute value for [`Store::update_link_fields`] from any serialisable value.
    pub fn attr<T: Serialize>(&self, v: T) -> Result<AttributeValue, StoreError> {
        serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Malformed {
            table: self.cfg.links_table.clone(),
            reason: e.to_string(),
        })
    }

    /// Remove every mapping and the cursor of a link (disconnection).
    pub async fn forget_link_state(&self, link: &Link) -> Result<usize, StoreError> {
        let maps = self.mappings_of_link(&link.link_id).await?;
        for m in &maps {
            self.delete_mapping(&link.link_id, &m.uid).await?;
        }
        self.delete_cursor(&link.link_id).await?;
        Ok(maps.len())
    }

    // ---- mappings ----

    /// The mapping of hub event `uid` on `link_id`.
    pub async fn get_mapping(
        &self,
        link_id: &str,
        uid: &str,
    ) -> Result<Option<Mapping>, StoreError> {
        let key = HashMap::from([
            ("link_id".to_string(), s(link_id)),
            ("uid".to_string(), s(uid)),
        ]);
        self.get(&self.cfg.mappings_table, key).await
    }

    /// Mappings of a link in `status` (`conflict`, `error`): a Query of the link's items with
    /// a filter, so it reads every mapping of the link; the API's lists use it, not the sync.
    pub async fn mappings_in_status(
        &self,
        link_id: &str,
        status: EventStatus,
    ) -> Result<Vec<Mapping>, StoreError> {
        let table = &self.cfg.mappings_table;
        let want = self.attr(status)?;
        self.query_pages(table, super::Decode::Whole, |start| {
            self.ddb
                .query()
                .table_name(table)
                .key_condition_expression("link_id = :l")
                .filter_expression("#s = :c")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":l", s(link_id))
                .expression_attribute_values(":c", want.clone())
                .set_exclusive_start_key(start)
                .consistent_read(true)
        })
        .await
    }

    // ---- pages ----

    async fn query_page(
        &self,
        table: &str,
        pk: (&str, AttributeValue),
        sk_name: &str,
        after: Option<AttributeValue>,
        limit: i32,
        forward: bool,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let start = after
            .map(|a| HashMap::from([(pk.0.to_string(), pk.1.clone()), (sk_name.to_string(), a)]));
        let resp = self
            .ddb
            .query()
            .table_name(table)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", pk.0)
            .expression_attribute_values(":v", pk.1.clone())
            .set_exclusive_start_key(start)
            .limit(limit)
            .scan_index_forward(forward)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::aws_err("Query", table, e))?;
        Ok((resp.items.unwrap_or_default(), resp.last_evaluated_key))
    }

    /// Hub events of a group in UID order after `after` (tombstones included), at most
    /// `limit` per page.
    pub async fn events_page(
        &self,
        group_id: &str,
        after: Option<&str>,
        limit: i32,
    ) -> Result<Page<HubEvent>, StoreError> {
        let table = &self.cfg.events_table;
        let (items, last) = self
            .query_page(
                table,
                ("group_id", s(group_id)),
                "uid",
                after.map(s),
                limit,
                true,
            )
            .await?;
        let mut events: Vec<HubEvent> = Vec::with_capacity(items.len());
        for mut i in items {
            self.hydrate(table, &mut i).await?;
            events.push(Self::from_item(table, i)?);
        }
        let items = events;
        let next = last
            .filter(|k| !k.is_empty())
            .and_then(|_| items.last().map(|e| e.uid.clone()));
        Ok(Page { items, next })
    }

    /// Run records of a link, newest first, before run id `before`.
    pub async fn runs_page(
        &self,
        link_id: &str,
        before: Option<&str>,
        limit: i32,
    ) -> Result<Page<RunRecord>, StoreError> {
        let table = &self.cfg.runs_table;
        let (items, last) = self
            .query_page(
                table,
                ("link_id", s(link_id)),
                "run_id",
                before.map(s),
                limit,
                false,
            )
            .await?;
        let items: Vec<RunRecord> = items
            .into_iter()
            .map(|i| Self::from_item(table, i))
            .collect::<Result<_, _>>()?;
        let next = last
            .filter(|k| !k.is_empty())
            .and_then(|_| items.last().map(|r| r.run_id.clone()));
        Ok(Page { items, next })
    }

    /// Hub changes of a group after `cursor` in (`updated_ms`, `uid`) order, tombstones
    /// included, at most `limit` (GSI `changes-index`). The second value says whether more
    /// changes may follow right away. Items of one millisecond come in no defined order, so
    /// the millisecond of the limit-th change is read whole: the next page's cursor must not
    /// split it.
    pub async fn changes_after(
        &self,
        group_id: &str,
        cursor: &ChangeCursor,
        limit: usize,
    ) -> Result<(Vec<HubEvent>, bool), StoreError> {
        let mut out = self
            .read_changes(group_id, cursor, limit, WholeMillisecond(true))
            .await?;
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    /// The hub changes of a group after `cursor` when there are at most `limit` of them, in
    /// (`updated_ms`, `uid`) order; `None` as soon as more are seen, without reading further.
    /// For a caller that reads the whole group anyway when there are more (a push): the
    /// writes of one pull can share an `updated_ms`, and reading that millisecond whole, as
    /// [`Store::changes_after`] must, would read every event the pull wrote.
    pub async fn changes_within(
        &self,
        group_id: &str,
        cursor: &ChangeCursor,
        limit: usize,
    ) -> Result<Option<Vec<HubEvent>>, StoreError> {
        let out = self
            .read_changes(group_id, cursor, limit, WholeMillisecond(false))
            .await?;
        Ok((out.len() <= limit).then_some(out))
    }

    /// The changes after `cursor`, sorted, read a Query page at a time until more than
    /// `limit` are in hand (and, with `whole.0`, the millisecond of the limit-th is
    /// complete) or the index has no more.
    async fn read_changes(
        &self,
        group_id: &str,
        cursor: &ChangeCursor,
        limit: usize,
        whole: WholeMillisecond,
    ) -> Result<Vec<HubEvent>, StoreError> {
        let table = &self.cfg.events_table;
        let mut out: Vec<HubEvent> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .ddb
                .query()
                .table_name(table)
                .index_name("changes-index")
                .key_condition_expression("group_id = :g AND updated_ms >= :ms")
                .expression_attribute_values(":g", s(group_id))
                .expression_attribute_values(":ms", n(cursor.ms))
                .set_exclusive_start_key(start.take())
                .limit(((limit + 1) as i32).max(50))
                .send()
                .await
                .map_err(|e| Self::aws_err("Query", table, e))?;
            for mut i in resp.items.unwrap_or_default() {
                self.hydrate(table, &mut i).await?;
                let ev: HubEvent = Self::from_item(table, i)?;
                if (ev.updated_ms, ev.uid.as_str()) > (cursor.ms, cursor.uid.as_str()) {
                    out.push(ev);
                }
            }
            out.sort_by(|a, b| (a.updated_ms, &a.uid).cmp(&(b.updated_ms, &b.uid)));
            let enough = out.len() > limit
                && (!whole.0 || out[limit].updated_ms > out[limit - 1].updated_ms);
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() && !enough => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    // ---- idempotency ----

    /// The answer kept for `key`, if any (expired records count as absent).
    pub async fn get_idempotency(
        &self,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let k = HashMap::from([("key".to_string(), s(key))]);
        let r: Option<IdempotencyRecord> = self.get(&self.cfg.idempotency_table, k).await?;
        Ok(r.filter(|r| r.expires_at > crate::config::now_secs()))
    }

    /// Keep the first answer for `rec.key`; `false` when another request stored one first.
    pub async fn put_idempotency(&self, rec: &IdempotencyRecord) -> Result<bool, StoreError> {
        let table = &self.cfg.idempotency_table;
        let req = self
            .ddb
            .put_item()
            .table_name(table)
            .set_item(Some(Self::to_item(table, rec)?))
            .condition_expression("attribute_not_exists(#k) OR expires_at < :now")
            .expression_attribute_names("#k", "key")
            .expression_attribute_values(":now", n(crate::config::now_secs()));
        self.put_if(table, req).await
    }
}
