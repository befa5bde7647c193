//! A provider quota shared by every Lambda that calls for one account (issue 13, item 5):
//! a fixed-window counter per (quota key, window) in the leases table, reserved in blocks.
//!
//! Each process reserves `block` calls at a time with one conditional UpdateItem
//! (`ADD used :block`, refused once `used` would pass the window's limit); it spends the
//! block locally, so the DynamoDB cost is one write per `block` provider calls (Google at
//! 600 calls a minute with blocks of 10: at most 60 writes a minute per account, about
//! $0.0000763 a minute at on-demand prices). When the window is used up the caller waits for
//! the next one. The per-process pacer (governor) still smooths calls inside the window.
//! Items expire by the table's TTL two windows after their end.

use std::sync::Mutex;

use super::{n, s, Store, StoreError};
use crate::config::now_millis;

/// A shared quota of `limit` calls per `window_ms` for one account.
pub struct SharedQuota {
    store: Store,
    key: String,
    limit: u32,
    window_ms: i64,
    block: u32,
    /// Calls reserved and not yet spent in `(window start, count)`.
    local: Mutex<(i64, u32)>,
}

/// What [`SharedQuota::try_take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The calls may go now.
    Go,
    /// The window is used up: try again at this time (epoch ms).
    WaitUntil(i64),
}

impl SharedQuota {
    /// The quota `key` (e.g. `google:<account>`) of `limit` calls per `window_ms`
    /// milliseconds, reserved `block` calls at a time.
    pub fn new(store: Store, key: &str, limit: u32, window_ms: i64, block: u32) -> Self {
        Self {
            store,
            key: format!("quota:{key}"),
            limit: limit.max(1),
            window_ms: window_ms.max(1),
            block: block.clamp(1, limit.max(1)),
            local: Mutex::new((0, 0)),
        }
    }

    /// Take `n` calls now if the window has them (reserving a block from DynamoDB when the
    /// local reservation is short).
    ///
    /// Errors: DynamoDB failure.
    pub async fn try_take(&self, n: u32) -> Result<Grant, StoreError> {
        let now = now_millis();
        let window = now - now.rem_euclid(self.window_ms);
        {
            let mut l = self
                .local
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if l.0 != window {
                *l = (window, 0);
            }
            if l.1 >= n {
                l.1 -= n;
                return Ok(Grant::Go);
            }
        }
        let want = self.block.max(n);
        if !self.reserve(window, want).await? {
            // Less than a block left: take exactly what is needed, or wait.
            if n >= want || !self.reserve(window, n).await? {
                return Ok(Grant::WaitUntil(window + self.window_ms));
            }
            return Ok(Grant::Go);
        }
        let mut l = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if l.0 != window {
            *l = (window, 0);
        }
        l.1 += want - n;
        Ok(Grant::Go)
    }

    /// Take `n` calls, waiting for the next window while this one is used up.
    ///
    /// Errors: DynamoDB failure.
    pub async fn take(&self, n: u32) -> Result<(), StoreError> {
        loop {
            match self.try_take(n).await? {
                Grant::Go => return Ok(()),
                Grant::WaitUntil(t) => {
                    let wait = (t - now_millis()).max(1) as u64;
                    tracing::info!(quota = %self.key, wait_ms = wait, "shared quota used up; waiting for the next window");
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
            }
        }
    }

    /// Reserve `count` calls of `window` in DynamoDB: `false` when the window has fewer left.
    async fn reserve(&self, window: i64, count: u32) -> Result<bool, StoreError> {
        if self.limit < count {
            return Ok(false);
        }
        let table = &self.store.cfg.leases_table;
        let req = self
            .store
            .ddb
            .update_item()
            .table_name(table)
            .key("link_id", s(&format!("{}:{window}", self.key)))
            .update_expression("ADD used :c SET expires_at = :exp")
            .condition_expression("attribute_not_exists(used) OR used <= :room")
            .expression_attribute_values(":c", n(count as i64))
            .expression_attribute_values(":room", n(self.limit as i64 - count as i64))
            .expression_attribute_values(":exp", n((window + 3 * self.window_ms) / 1000));
        Ok(Store::held("UpdateItem", table, req.send().await)?.is_some())
    }
}
