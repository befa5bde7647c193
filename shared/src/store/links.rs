//! Links: their items, the group and user indexes, the schedule's `due-index`, and what a
//! run writes back to its link.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

use super::{n, s, Store, StoreError};
use crate::model::{Link, LinkStatus};

/// What a run changes on its link ([`Store::finish_link_run`]); `None`: unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkRunUpdate {
    /// The link's new status and reason.
    pub status: Option<(crate::model::LinkStatus, Option<String>)>,
    /// The new failure streak.
    pub consecutive_failures: Option<i64>,
    /// After a successful pull: the next due time (epoch seconds) and the push
    /// notification count the pull covers ([`crate::model::Link::covered_push_seq`]).
    pub next_sync: Option<(i64, i64)>,
    /// A released mass deletion went through: the release is used up.
    pub mass_delete_used: bool,
    /// After a complete push: its watermark ([`crate::model::Link::pushed_through_ms`]).
    pub pushed_through_ms: Option<i64>,
    /// After a complete push that read the whole group: its count
    /// ([`crate::model::Link::full_pushed_seq`]).
    pub full_pushed_seq: Option<i64>,
}

/// Where the next page of a `due-index` shard starts ([`Store::due_page`]; DynamoDB's
/// `LastEvaluatedKey`, opaque to callers).
#[derive(Debug, Clone)]
pub struct DueCursor(HashMap<String, AttributeValue>);

impl Store {
    /// Create or replace a link.
    pub async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        self.put(&self.cfg.links_table, link).await
    }

    /// One link by id.
    pub async fn get_link(&self, link_id: &str) -> Result<Option<Link>, StoreError> {
        let key = HashMap::from([("link_id".to_string(), s(link_id))]);
        self.get(&self.cfg.links_table, key).await
    }

    /// All members of a sync group (GSI `group-index`).
    pub async fn links_of_group(&self, group_id: &str) -> Result<Vec<Link>, StoreError> {
        self.query_all(
            &self.cfg.links_table,
            Some("group-index"),
            "group_id",
            s(group_id),
        )
        .await
    }

    /// All links of an application user (GSI `user-index`).
    pub async fn links_of_user(&self, user_id: i64) -> Result<Vec<Link>, StoreError> {
        self.query_all(
            &self.cfg.links_table,
            Some("user-index"),
            "user_id",
            n(user_id),
        )
        .await
    }

    /// All links, of any application user, whose tokens belong to the provider account
    /// `account` (a [`crate::oauth::account_key`]; GSI `account-index`, which holds only
    /// links with an account).
    ///
    /// Errors: DynamoDB failure, or an item that is not a link.
    pub async fn links_of_account(&self, account: &str) -> Result<Vec<Link>, StoreError> {
        self.query_all(
            &self.cfg.links_table,
            Some("account-index"),
            "account",
            s(account),
        )
        .await
    }

    /// One page (DynamoDB's 1 MB at most) of the links in `shard` of the `due-index` whose
    /// `next_sync_at` is at or before `now` (epoch seconds, UTC), from `start` (`None` for the
    /// first page, then the cursor the previous page returned). Returns the links and the
    /// cursor of the next page (`None`: that was the last). A tick reads one shard's due
    /// links with these pages ([`crate::handlers::fanout::tick`]), so its reads are the due
    /// links only, never the whole table, and its memory one page per shard.
    ///
    /// Errors: DynamoDB failure, or an item that is not a link.
    pub async fn due_page(
        &self,
        shard: u8,
        now: i64,
        start: Option<DueCursor>,
    ) -> Result<(Vec<Link>, Option<DueCursor>), StoreError> {
        let table = &self.cfg.links_table;
        let resp = self
            .ddb
            .query()
            .table_name(table)
            .index_name("due-index")
            .key_condition_expression("due_shard = :s AND next_sync_at <= :now")
            .expression_attribute_values(":s", n(i64::from(shard)))
            .expression_attribute_values(":now", n(now))
            .set_exclusive_start_key(start.map(|c| c.0))
            .send()
            .await
            .map_err(|e| Self::aws_err("Query", table, e))?;
        let links = self
            .decode_page(table, resp.items.unwrap_or_default())
            .await?;
        let next = resp
            .last_evaluated_key
            .filter(|k| !k.is_empty())
            .map(DueCursor);
        Ok((links, next))
    }

    /// An UpdateItem of link `link_id` in the links table; the caller adds its expressions.
    pub(super) fn update_link(
        &self,
        link_id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.ddb
            .update_item()
            .table_name(&self.cfg.links_table)
            .key("link_id", s(link_id))
    }

    /// Set when the schedule next makes the link due (epoch seconds, UTC); after a successful
    /// pull also the `push_seq` that pull covers ([`crate::model::Link::covered_push_seq`]).
    pub async fn set_next_sync(
        &self,
        link_id: &str,
        next_sync_at: i64,
        covered_push_seq: Option<i64>,
    ) -> Result<(), StoreError> {
        let table = &self.cfg.links_table;
        let mut req = self
            .update_link(link_id)
            .condition_expression("attribute_exists(link_id)")
            .expression_attribute_values(":t", n(next_sync_at))
            .expression_attribute_values(":ds", n(i64::from(Link::due_shard_of(link_id))));
        req = match covered_push_seq {
            Some(c) => req
                .update_expression("SET next_sync_at = :t, due_shard = :ds, covered_push_seq = :c")
                .expression_attribute_values(":c", n(c)),
            None => req.update_expression("SET next_sync_at = :t, due_shard = :ds"),
        };
        req.send()
            .await
            .map_err(|e| Self::aws_err("UpdateItem", table, e))?;
        Ok(())
    }

    /// Count one push notification for `link_id` (atomic `ADD push_seq 1`) and claim the
    /// link's pull marker `pull_queued_at` (epoch ms) when no pull is queued for it:
    /// `SET pull_queued_at = if_not_exists(pull_queued_at, now)` in the same UpdateItem.
    /// A marker older than [`PULL_MARKER_STALE_MS`] (its job was lost) is taken over with a
    /// second, conditional write. See [`Counted`].
    ///
    /// Errors: the link does not exist (conditional check), or DynamoDB fails.
    pub async fn count_notification(
        &self,
        link_id: &str,
        now_ms: i64,
    ) -> Result<Counted, StoreError> {
        let table = &self.cfg.links_table;
        let out = self
            .update_link(link_id)
            .update_expression(
                "ADD push_seq :one SET pull_queued_at = if_not_exists(pull_queued_at, :now)",
            )
            .condition_expression("attribute_exists(link_id)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| Self::aws_err("UpdateItem", table, e))?;
        let seq = num_attr(out.attributes(), "push_seq").unwrap_or(0);
        let marker = num_attr(out.attributes(), "pull_queued_at").unwrap_or(now_ms);
        let queue = match marker_verdict(marker, now_ms) {
            MarkerVerdict::Ours => true,
            MarkerVerdict::Pending => false,
            MarkerVerdict::Stale => self.swap_marker(link_id, marker, Some(now_ms)).await?,
        };
        Ok(Counted { seq, queue })
    }

    /// Replace the pull marker `old` by `new` (`None`: remove it), only while it is still
    /// `old`; false when another writer changed it first.
    async fn swap_marker(
        &self,
        link_id: &str,
        old: i64,
        new: Option<i64>,
    ) -> Result<bool, StoreError> {
        let table = &self.cfg.links_table;
        let mut req = self
            .update_link(link_id)
            .condition_expression("pull_queued_at = :old")
            .expression_attribute_values(":old", n(old));
        req = match new {
            Some(t) => req
                .update_expression("SET pull_queued_at = :new")
                .expression_attribute_values(":new", n(t)),
            None => req.update_expression("REMOVE pull_queued_at"),
        };
        Ok(Self::held("UpdateItem", table, req.send().await)?.is_some())
    }

    /// Give back the pull marker this process set at `at_ms` (its job could not be queued):
    /// the provider's retry of the notification then queues the pull. Removed only while
    /// it is still `at_ms`.
    ///
    /// Errors: DynamoDB fails.
    pub async fn release_pull_marker(&self, link_id: &str, at_ms: i64) -> Result<(), StoreError> {
        self.swap_marker(link_id, at_ms, None).await.map(|_| ())
    }

    /// A notification-queued pull begins: remove the pull marker (a notification counted
    /// from now on queues a pull of its own) and read the link's `(push_seq,
    /// covered_push_seq)` after the removal, in one UpdateItem. `None`: the link is gone.
    ///
    /// Errors: DynamoDB fails.
    pub async fn take_pull_marker(&self, link_id: &str) -> Result<Option<(i64, i64)>, StoreError> {
        let table = &self.cfg.links_table;
        let r = self
            .update_link(link_id)
            .update_expression("REMOVE pull_queued_at")
            .condition_expression("attribute_exists(link_id)")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        let Some(out) = Self::held("UpdateItem", table, r)? else {
            return Ok(None);
        };
        let num = |f: &str| num_attr(out.attributes(), f).unwrap_or(0);
        Ok(Some((num("push_seq"), num("covered_push_seq"))))
    }

    /// Count one full push of `link_id` begun (atomic `ADD full_push_seq 1`, before the push
    /// reads the group); returns the new count ([`Link::full_push_seq`]).
    ///
    /// Errors: the link does not exist (conditional check), or DynamoDB fails.
    pub async fn begin_full_push(&self, link_id: &str) -> Result<i64, StoreError> {
        self.add_one(link_id, "full_push_seq").await
    }

    /// `ADD field 1` on the link; returns the new value.
    async fn add_one(&self, link_id: &str, field: &str) -> Result<i64, StoreError> {
        let table = &self.cfg.links_table;
        let out = self
            .update_link(link_id)
            .update_expression("ADD #f :one")
            .condition_expression("attribute_exists(link_id)")
            .expression_attribute_names("#f", field)
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| Self::aws_err("UpdateItem", table, e))?;
        Ok(num_attr(out.attributes(), field).unwrap_or(0))
    }

    /// Record what a run changed on its link in one UpdateItem, or none when nothing did
    /// (a quiet pull still moves `next_sync_at`; a push of a healthy link writes nothing).
    ///
    /// Errors: the link was deleted meanwhile (conditional check) or DynamoDB fails.
    pub async fn finish_link_run(
        &self,
        link_id: &str,
        u: &LinkRunUpdate,
    ) -> Result<(), StoreError> {
        let mut sets: Vec<(&str, AttributeValue)> = Vec::new();
        if let Some((status, reason)) = &u.status {
            sets.push(("status", self.attr(status)?));
            sets.push((
                "status_reason",
                reason
                    .as_deref()
                    .map(s)
                    .unwrap_or(AttributeValue::Null(true)),
            ));
        }
        if let Some(f) = u.consecutive_failures {
            sets.push(("consecutive_failures", n(f)));
        }
        if let Some((at, covered)) = u.next_sync {
            sets.push(("next_sync_at", n(at)));
            sets.push(("covered_push_seq", n(covered)));
            // Links written before the due index get their shard with their next sync.
            sets.push(("due_shard", n(i64::from(Link::due_shard_of(link_id)))));
        }
        if u.mass_delete_used {
            sets.push(("allow_mass_delete", AttributeValue::Bool(false)));
        }
        if let Some(seq) = u.full_pushed_seq {
            sets.push(("full_pushed_seq", n(seq)));
        }
        if let Some(ms) = u.pushed_through_ms {
            sets.push(("pushed_through_ms", n(ms)));
        }
        self.update_link_fields(link_id, sets).await
    }

    /// Record when the access token in the link's secret expires
    /// ([`crate::model::Link::token_expires_at`], epoch seconds, UTC).
    ///
    /// Errors: the link does not exist (conditional check) or DynamoDB fails.
    pub async fn set_token_expiry(&self, link_id: &str, at: i64) -> Result<(), StoreError> {
        self.update_link_fields(link_id, vec![("token_expires_at", n(at))])
            .await
    }

    /// Record the link's health.
    pub async fn set_link_status(
        &self,
        link_id: &str,
        status: LinkStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let table = &self.cfg.links_table;
        let status =
            serde_dynamo::to_attribute_value(status).map_err(|e| StoreError::Malformed {
                table: table.clone(),
                reason: e.to_string(),
            })?;
        let reason = reason.map(s).unwrap_or(AttributeValue::Null(true));
        self.update_link(link_id)
            .update_expression("SET #s = :s, status_reason = :r")
            .condition_expression("attribute_exists(link_id)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", status)
            .expression_attribute_values(":r", reason)
            .send()
            .await
            .map_err(|e| Self::aws_err("UpdateItem", table, e))?;
        Ok(())
    }
}

/// The number attribute `field` of an item DynamoDB returned (`None`: absent or no integer).
fn num_attr(item: Option<&HashMap<String, AttributeValue>>, field: &str) -> Option<i64> {
    item.and_then(|a| a.get(field))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// A pull marker older than this (epoch ms; 10 minutes) belongs to a job that was lost: a
/// notification takes it over and queues a pull of its own.
pub const PULL_MARKER_STALE_MS: i64 = 10 * 60 * 1000;

/// What counting a push notification decided ([`Store::count_notification`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// The link's `push_seq` after counting this notification.
    pub seq: i64,
    /// Queue a pull: none was queued (this notification set the marker). `false`: a queued
    /// pull that has not begun yet reads the link after this count, so it covers it.
    pub queue: bool,
}

/// How a notification finds the pull marker ([`marker_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerVerdict {
    /// It set the marker itself: it queues the pull.
    Ours,
    /// A pull is queued and has not begun: it covers this notification.
    Pending,
    /// The marker's job was lost (older than [`PULL_MARKER_STALE_MS`]).
    Stale,
}

/// The verdict for a marker `marker` (epoch ms) read back by a notification counted at
/// `now_ms` (the value it offered).
pub fn marker_verdict(marker: i64, now_ms: i64) -> MarkerVerdict {
    if marker == now_ms {
        MarkerVerdict::Ours
    } else if now_ms - marker > PULL_MARKER_STALE_MS {
        MarkerVerdict::Stale
    } else {
        MarkerVerdict::Pending
    }
}

#[cfg(test)]
mod marker_tests {
    use super::*;

    #[test]
    fn marker_verdicts() {
        let now = 1_700_000_000_000;
        let cases = [
            (now, MarkerVerdict::Ours),
            (now - 1, MarkerVerdict::Pending),
            (now - PULL_MARKER_STALE_MS, MarkerVerdict::Pending),
            (now - PULL_MARKER_STALE_MS - 1, MarkerVerdict::Stale),
            // Another Lambda's clock a little ahead: still a queued pull.
            (now + 5, MarkerVerdict::Pending),
        ];
        for (marker, want) in cases {
            assert_eq!(marker_verdict(marker, now), want, "marker {marker}");
        }
    }
}
