//! State in DynamoDB (tables defined in `infra/template.yaml`), items mapped with
//! serde_dynamo. Concurrency is optimistic: hub events are written conditionally on their
//! previous `version`, leases with a conditional put on expiry.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Config;
use crate::model::{ChannelRecord, HubEvent, Link, Mapping, RunRecord};

mod batch;
mod bodies;
mod cursor;
mod links;
mod transact;
mod upkeep;
pub use bodies::{Bodies, INLINE_MAX};
pub use cursor::CursorState;
pub use links::{
    marker_verdict, Counted, DueCursor, LinkRunUpdate, MarkerVerdict, PULL_MARKER_STALE_MS,
};
pub use transact::PairWrite;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost a race (version or lease changed).
    #[error("conditional write on {table} failed: the item changed concurrently")]
    Conflict {
        /// Table name.
        table: String,
    },
    /// Any other DynamoDB failure.
    #[error("DynamoDB {op} on {table}: {reason}")]
    Aws {
        /// Operation.
        op: &'static str,
        /// Table name.
        table: String,
        /// Error text.
        reason: String,
    },
    /// A write carried a fencing token older than one already written: the lease it was
    /// taken under expired and another worker holds the link ([`Store::fenced`]).
    #[error("write to {table} refused: lease {fence} expired and was taken over")]
    Fenced {
        /// Table name.
        table: String,
        /// The refused token.
        fence: i64,
    },
    /// An event body passes [`INLINE_MAX`] and the store has no bodies bucket
    /// ([`Store::with_bodies`]).
    #[error("{attribute} of an item in {table} is {bytes} bytes, more than an item holds, and no bodies bucket is configured (CALSYNC_BODIES_BUCKET)")]
    TooLarge {
        /// Table name.
        table: String,
        /// The attribute (`ical`, `base`, `conflict_remote`).
        attribute: &'static str,
        /// Its size in bytes.
        bytes: usize,
    },
    /// An item did not have the expected shape.
    #[error("item in {table} is malformed: {reason}")]
    Malformed {
        /// Table name.
        table: String,
        /// serde_dynamo error text.
        reason: String,
    },
}

type Item = HashMap<String, AttributeValue>;

/// How a read turns items into values.
#[derive(Debug, Clone, Copy)]
enum Decode {
    /// Whole items, bodies kept in S3 read back.
    Whole,
    /// Heads: the body attributes dropped before decoding ([`Store::decode_heads`]).
    Head,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// The key of hub event `uid` of `group_id` in the events table.
fn event_key(group_id: &str, uid: &str) -> Item {
    HashMap::from([("group_id".into(), s(group_id)), ("uid".into(), s(uid))])
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Access to the calsync tables.
#[derive(Clone)]
pub struct Store {
    ddb: Client,
    cfg: Config,
    /// The lease's fencing token mapping and cursor writes carry ([`Store::fenced`]).
    fence: Option<i64>,
    /// Where bodies above [`INLINE_MAX`] go ([`Store::with_bodies`]).
    bodies: Option<Bodies>,
}

impl Store {
    /// Store over the tables named in `cfg`.
    pub fn new(ddb: Client, cfg: Config) -> Self {
        Self {
            ddb,
            cfg,
            fence: None,
            bodies: None,
        }
    }

    fn aws_err<E: std::error::Error + 'static, R: std::fmt::Debug>(
        op: &'static str,
        table: &str,
        e: SdkError<E, R>,
    ) -> StoreError {
        StoreError::Aws {
            op,
            table: table.into(),
            reason: DisplayErrorContext(e).to_string(),
        }
    }

    fn to_item<T: Serialize>(table: &str, v: &T) -> Result<Item, StoreError> {
        serde_dynamo::to_item(v).map_err(|e| StoreError::Malformed {
            table: table.into(),
            reason: e.to_string(),
        })
    }

    fn from_item<T: DeserializeOwned>(table: &str, item: Item) -> Result<T, StoreError> {
        serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed {
            table: table.into(),
            reason: e.to_string(),
        })
    }

    async fn put<T: Serialize>(&self, table: &str, v: &T) -> Result<(), StoreError> {
        self.ddb
            .put_item()
            .table_name(table)
            .set_item(Some(Self::to_item(table, v)?))
            .send()
            .await
            .map_err(|e| Self::aws_err("PutItem", table, e))?;
        Ok(())
    }

    async fn get<T: DeserializeOwned>(
        &self,
        table: &str,
        key: Item,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::aws_err("GetItem", table, e))?;
        match out.item {
            Some(mut i) => {
                self.hydrate(table, &mut i).await?;
                Self::from_item(table, i).map(Some)
            }
            None => Ok(None),
        }
    }

    /// DeleteItem of `key`; the item as it was, if there was one.
    async fn delete(&self, table: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .ddb
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Self::aws_err("DeleteItem", table, e))?;
        Ok(out.attributes)
    }

    /// Every item of `table`, optionally filtered by `(expression, ":now", value)` (a Scan).
    async fn scan<T: DeserializeOwned>(
        &self,
        table: &str,
        filter: Option<(&str, &str, AttributeValue)>,
    ) -> Result<Vec<T>, StoreError> {
        self.all_pages(table, Decode::Whole, |start| {
            let mut req = self
                .ddb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start);
            if let Some((expr, name, value)) = &filter {
                req = req
                    .filter_expression(*expr)
                    .expression_attribute_values(*name, value.clone());
            }
            async move {
                let resp = req
                    .send()
                    .await
                    .map_err(|e| Self::aws_err("Scan", table, e))?;
                Ok((resp.items.unwrap_or_default(), resp.last_evaluated_key))
            }
        })
        .await
    }

    /// Follow `LastEvaluatedKey` until the last page; `page` makes one request from a start key.
    async fn all_pages<T, F, Fut>(
        &self,
        table: &str,
        decode: Decode,
        mut page: F,
    ) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned,
        F: FnMut(Option<Item>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), StoreError>>,
    {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (items, last) = page(start.take()).await?;
            out.extend(match decode {
                Decode::Whole => self.decode_page(table, items).await?,
                Decode::Head => Self::decode_heads(table, items)?,
            });
            match last {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// One page's items of `table`, their offloaded bodies read back, deserialized.
    async fn decode_page<T: DeserializeOwned>(
        &self,
        table: &str,
        items: Vec<Item>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::with_capacity(items.len());
        for mut i in items {
            self.hydrate(table, &mut i).await?;
            out.push(Self::from_item(table, i)?);
        }
        Ok(out)
    }

    /// Query all items with partition key `pk_name = pk` (all pages), optionally on an index.
    async fn query_all<T: DeserializeOwned>(
        &self,
        table: &str,
        index: Option<&str>,
        pk_name: &str,
        pk: AttributeValue,
    ) -> Result<Vec<T>, StoreError> {
        self.query_all_as(table, index, pk_name, pk, Decode::Whole)
            .await
    }

    /// [`Store::query_all`], decoded as `decode` says.
    async fn query_all_as<T: DeserializeOwned>(
        &self,
        table: &str,
        index: Option<&str>,
        pk_name: &str,
        pk: AttributeValue,
        decode: Decode,
    ) -> Result<Vec<T>, StoreError> {
        self.query_pages(table, decode, |start| {
            self.ddb
                .query()
                .table_name(table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", pk_name)
                .expression_attribute_values(":v", pk.clone())
                .set_exclusive_start_key(start)
                .set_consistent_read(index.is_none().then_some(true))
        })
        .await
    }

    /// Every page of the Query that `query` builds from a start key (`None` first, then each
    /// `LastEvaluatedKey`), deserialized.
    async fn query_pages<T: DeserializeOwned>(
        &self,
        table: &str,
        decode: Decode,
        query: impl Fn(Option<Item>) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<T>, StoreError> {
        self.all_pages(table, decode, |start| {
            let req = query(start);
            async move {
                let resp = req
                    .send()
                    .await
                    .map_err(|e| Self::aws_err("Query", table, e))?;
                Ok((resp.items.unwrap_or_default(), resp.last_evaluated_key))
            }
        })
        .await
    }

    // ---- hub events ----

    /// All hub events of a group, tombstones included.
    pub async fn events_of_group(&self, group_id: &str) -> Result<Vec<HubEvent>, StoreError> {
        self.query_all(&self.cfg.events_table, None, "group_id", s(group_id))
            .await
    }

    /// The heads of all hub events of a group, tombstones included: each event without its
    /// body (`ical` empty; nothing read from S3), for decisions that need only UIDs,
    /// versions and tombstones. Same reads as [`Store::events_of_group`] (DynamoDB bills a
    /// Query by the items' whole size), but a 10,000-event group fits in about 2 MB of
    /// memory instead of tens. Read the whole events by key ([`Store::mappings_and_events`])
    /// before planning a write from one.
    pub async fn event_heads_of_group(&self, group_id: &str) -> Result<Vec<HubEvent>, StoreError> {
        let t = &self.cfg.events_table;
        self.query_all_as(t, None, "group_id", s(group_id), Decode::Head)
            .await
    }

    /// One hub event.
    pub async fn get_event(
        &self,
        group_id: &str,
        uid: &str,
    ) -> Result<Option<HubEvent>, StoreError> {
        self.get(&self.cfg.events_table, event_key(group_id, uid))
            .await
    }

    /// Write a hub event if its stored version is still `expected` (`None`: must not exist).
    /// Errors: [`StoreError::Conflict`] when another writer got there first.
    pub async fn put_event(&self, ev: &HubEvent, expected: Option<i64>) -> Result<(), StoreError> {
        let action = self.event_action(ev, expected).await?;
        match self.put_one_by_one(vec![action]).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict {
                table: self.cfg.events_table.clone(),
            }),
        }
    }

    // ---- mappings ----

    /// All mappings of a link.
    pub async fn mappings_of_link(&self, link_id: &str) -> Result<Vec<Mapping>, StoreError> {
        self.query_all(&self.cfg.mappings_table, None, "link_id", s(link_id))
            .await
    }

    /// The heads of all mappings of a link: each without its bodies (`base` and
    /// `conflict_remote` `None`), as [`Store::event_heads_of_group`] reads events. A head
    /// is never written back: read the whole mapping by key first.
    pub async fn mapping_heads_of_link(&self, link_id: &str) -> Result<Vec<Mapping>, StoreError> {
        self.mapping_heads_of_link_between(link_id, None, None)
            .await
    }

    /// [`Store::mapping_heads_of_link`] of the UIDs in (`after`, `through`] only (`None`:
    /// unbounded on that side): a full push reads the heads of each events page's UID range
    /// with the page ([`crate::engine::push`]), so that its first writes need not wait for
    /// the heads of the whole link, and it holds one page's heads at a time.
    pub async fn mapping_heads_of_link_between(
        &self,
        link_id: &str,
        after: Option<&str>,
        through: Option<&str>,
    ) -> Result<Vec<Mapping>, StoreError> {
        let table = &self.cfg.mappings_table;
        if after.is_none() && through.is_none() {
            return self
                .query_all_as(table, None, "link_id", s(link_id), Decode::Head)
                .await;
        }
        // One condition on the sort key: `>` and `<=` together are `BETWEEN` (inclusive),
        // with `after` itself left out here.
        let condition = match (after, through) {
            (Some(_), Some(_)) => "link_id = :l AND #u BETWEEN :after AND :through",
            (Some(_), None) => "link_id = :l AND #u > :after",
            _ => "link_id = :l AND #u <= :through",
        };
        let heads: Vec<Mapping> = self
            .query_pages(table, Decode::Head, |start| {
                let mut q = self
                    .ddb
                    .query()
                    .table_name(table)
                    .key_condition_expression(condition)
                    .expression_attribute_names("#u", "uid")
                    .expression_attribute_values(":l", s(link_id))
                    .set_exclusive_start_key(start)
                    .consistent_read(true);
                if let Some(a) = after {
                    q = q.expression_attribute_values(":after", s(a));
                }
                if let Some(t) = through {
                    q = q.expression_attribute_values(":through", s(t));
                }
                q
            })
            .await?;
        Ok(heads
            .into_iter()
            .filter(|m| Some(m.uid.as_str()) != after)
            .collect())
    }

    /// Create or replace a mapping (fenced, see [`Store::fenced`]).
    pub async fn put_mapping(&self, m: &Mapping) -> Result<(), StoreError> {
        let action = self.mapping_action(m).await?;
        self.put_one_by_one(vec![action]).await.map(|_| ())
    }

    /// Remove a mapping (fenced, see [`Store::fenced`]).
    pub async fn delete_mapping(&self, link_id: &str, uid: &str) -> Result<(), StoreError> {
        let key = HashMap::from([
            ("link_id".to_string(), s(link_id)),
            ("uid".to_string(), s(uid)),
        ]);
        let old = self.delete_fenced(&self.cfg.mappings_table, key).await?;
        self.forget_bodies(old.as_ref()).await;
        Ok(())
    }

    // ---- leases ----

    /// The outcome of a conditional request `op` on `table`: `Some(output)`, or `None` when
    /// its condition failed (nothing written).
    ///
    /// Errors: any other DynamoDB failure.
    pub(crate) fn held<T, E, R>(
        op: &'static str,
        table: &str,
        res: Result<T, SdkError<E, R>>,
    ) -> Result<Option<T>, StoreError>
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match res {
            Ok(out) => Ok(Some(out)),
            Err(e)
                if e.as_service_error().and_then(|se| se.code())
                    == Some("ConditionalCheckFailedException") =>
            {
                Ok(None)
            }
            Err(e) => Err(Self::aws_err(op, table, e)),
        }
    }

    /// Send a conditional PutItem to `table`: `false` when its condition failed (nothing
    /// written).
    ///
    /// Errors: any other DynamoDB failure.
    pub(crate) async fn put_if(
        &self,
        table: &str,
        req: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    ) -> Result<bool, StoreError> {
        Ok(Self::held("PutItem", table, req.send().await)?.is_some())
    }

    /// Record in the leases table that what `key` names was issued at `issued_ms` (epoch
    /// milliseconds): `false`, and nothing written, when something issued later is recorded
    /// (an older refresh token must never replace a newer one).
    ///
    /// Errors: DynamoDB failure.
    pub async fn advance_generation(&self, key: &str, issued_ms: i64) -> Result<bool, StoreError> {
        let table = &self.cfg.leases_table;
        let req = self
            .ddb
            .put_item()
            .table_name(table)
            .item("link_id", s(key))
            .item("issued_ms", n(issued_ms))
            .condition_expression("attribute_not_exists(link_id) OR issued_ms < :v")
            .expression_attribute_values(":v", n(issued_ms));
        self.put_if(table, req).await
    }

    // ---- run records ----

    /// Save a run record.
    pub async fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.put(&self.cfg.runs_table, run).await
    }

    /// All run records of a link, oldest first.
    pub async fn runs_of_link(&self, link_id: &str) -> Result<Vec<RunRecord>, StoreError> {
        self.query_all(&self.cfg.runs_table, None, "link_id", s(link_id))
            .await
    }

    // ---- push channels ----

    /// Save a channel record.
    pub async fn put_channel(&self, c: &ChannelRecord) -> Result<(), StoreError> {
        self.put(&self.cfg.channels_table, c).await
    }

    /// The channel `channel_id`, if known.
    pub async fn get_channel(&self, channel_id: &str) -> Result<Option<ChannelRecord>, StoreError> {
        let key = HashMap::from([("channel_id".to_string(), s(channel_id))]);
        self.get(&self.cfg.channels_table, key).await
    }

    /// Forget a channel.
    pub async fn delete_channel(&self, channel_id: &str) -> Result<(), StoreError> {
        let key = HashMap::from([("channel_id".to_string(), s(channel_id))]);
        self.delete(&self.cfg.channels_table, key).await?;
        Ok(())
    }

    /// Every channel (a Scan: one item per watched calendar; used by the token refresher's
    /// one-time backfill).
    pub async fn all_channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        self.scan(&self.cfg.channels_table, None).await
    }

    /// The push channels of one link: a Query of the channels table's GSI `link-index`, so
    /// a disconnect reads that link's channels, not every channel.
    pub async fn channels_of_link(&self, link_id: &str) -> Result<Vec<ChannelRecord>, StoreError> {
        let t = &self.cfg.channels_table;
        self.query_all(t, Some("link-index"), "link_id", s(link_id))
            .await
    }

    /// Every link (a Scan; used by the token refresher's one-time backfill).
    pub async fn all_links(&self) -> Result<Vec<Link>, StoreError> {
        self.scan(&self.cfg.links_table, None).await
    }
}

mod api;
mod lease;
mod oauth;
pub mod quota;
pub use api::{ChangeCursor, IdempotencyRecord, Page};
pub use lease::Lease;
pub use quota::{Grant, SharedQuota};
