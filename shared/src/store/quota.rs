//! A provider quota shared by every Lambda that calls for one account (issue 13, item 5): a
//! generic cell rate algorithm (GCRA, the "virtual scheduling" form of ITU-T I.371's leaky
//! bucket) whose one number, the theoretical arrival time `tat` (epoch ms), lives in an item
//! of the leases table, reserved in blocks.
//!
//! - **Rate.** Calls are let through at [`HEADROOM`] (95 %) of the documented quota, one
//!   every `interval = window / (limit × HEADROOM)`, with bursts of at most [`BURST`] calls
//!   (the tolerance). Any `window`-long stretch, wherever it starts, then carries at most
//!   `limit × HEADROOM + BURST` calls: Google's per-user quota counts over a sliding minute,
//!   and a fixed-window counter let twice the quota through across a window's end.
//! - **Cost.** Each process reserves `block` calls at a time with one conditional UpdateItem
//!   (`SET tat = tat + block × interval` while `tat` is within the tolerance, or a restart
//!   at `now + block × interval` when the bucket was idle, tried first when this process's
//!   last `tat` is long past); a guess the other way costs a second write, a refusal a
//!   GetItem for the time to wait. Google at
//!   570 calls a minute in blocks of 10: at most 57 writes a minute per account.
//! - **Waiting.** A refused reservation names the time it would pass; the caller sleeps
//!   until then. The per-process pacer (governor) still smooths calls within a block.
//!
//! The item also counts the calls ever `reserved` (for operators and tests). Items expire by
//! the table's TTL an hour after their last reservation.

use std::sync::Mutex;

use super::{n, s, Store, StoreError};
use crate::config::now_millis;

/// Share of a provider's documented quota that calsync uses (the rest absorbs bursts and
/// clock skew between Lambdas).
pub const HEADROOM: f64 = 0.95;
/// Calls that may go at once (the GCRA tolerance); no provider write chunk is larger
/// (Google's batches and Graph's `$batch` carry at most 20).
pub const BURST: u32 = 20;

/// A shared quota of `limit` calls per `window_ms` for one account.
pub struct SharedQuota {
    store: Store,
    key: String,
    /// Milliseconds between calls at the paced rate.
    interval_ms: f64,
    /// Calls that may go at once: [`BURST`], or less for a small quota so that
    /// `rate × window + burst` stays within `limit`.
    burst: u32,
    block: u32,
    /// Calls reserved and not yet spent by this process.
    local: Mutex<u32>,
    /// The `tat` this process last set (epoch ms; 0: none yet): when it is long past, the
    /// bucket is probably idle and the restart is tried first (one write instead of two).
    last_tat: std::sync::atomic::AtomicI64,
}

/// What [`SharedQuota::try_take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The calls may go now.
    Go,
    /// The quota is spent for now: try again at this time (epoch ms).
    WaitUntil(i64),
}

impl SharedQuota {
    /// The quota `key` (e.g. `google:<account>`) of `limit` calls per `window_ms`
    /// milliseconds, paced at [`HEADROOM`] of it with bursts of [`BURST`] calls at most (the
    /// other 5 % of `limit`, when that is less), reserved `block` calls at a time (at most
    /// a burst). Any `window_ms` stretch then carries at most `limit` calls.
    pub fn new(store: Store, key: &str, limit: u32, window_ms: i64, block: u32) -> Self {
        let limit = limit.max(1);
        let rate = f64::from(limit) * HEADROOM;
        let spare = (f64::from(limit) * (1.0 - HEADROOM)).floor() as u32;
        let burst = spare.clamp(1, BURST);
        Self {
            store,
            key: format!("quota:{key}"),
            interval_ms: window_ms.max(1) as f64 / rate,
            burst,
            block: block.clamp(1, burst),
            local: Mutex::new(0),
            last_tat: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Take `n` calls now if the quota has them (reserving a block from DynamoDB when the
    /// local reservation is short).
    ///
    /// Errors: DynamoDB failure.
    pub async fn try_take(&self, n: u32) -> Result<Grant, StoreError> {
        {
            let mut l = self
                .local
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *l >= n {
                *l -= n;
                return Ok(Grant::Go);
            }
        }
        let want = self.block.max(n);
        let wait = match self.reserve(want).await? {
            None => {
                let mut l = self
                    .local
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *l += want - n;
                return Ok(Grant::Go);
            }
            Some(at) if want > n => match self.reserve(n).await? {
                // Less than a block left: exactly what is needed.
                None => return Ok(Grant::Go),
                Some(at_n) => at_n.min(at),
            },
            Some(at) => at,
        };
        Ok(Grant::WaitUntil(wait))
    }

    /// Take `n` calls, waiting while the quota is spent.
    ///
    /// Errors: DynamoDB failure.
    pub async fn take(&self, n: u32) -> Result<(), StoreError> {
        loop {
            match self.try_take(n).await? {
                Grant::Go => return Ok(()),
                Grant::WaitUntil(t) => {
                    let wait = (t - now_millis()).max(1) as u64;
                    tracing::info!(quota = %self.key, wait_ms = wait, "shared quota spent; waiting");
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
            }
        }
    }

    /// Reserve `count` calls: `None` when granted, else the time (epoch ms) they would be.
    async fn reserve(&self, count: u32) -> Result<Option<i64>, StoreError> {
        use std::sync::atomic::Ordering;
        let cost = (f64::from(count) * self.interval_ms).ceil() as i64;
        let tolerance = (f64::from(self.burst) * self.interval_ms).ceil() as i64;
        for _ in 0..3 {
            let now = now_millis();
            // GCRA: the calls pass when max(tat, now) + cost <= now + tolerance. A `tat` a
            // little in the past (two intervals: a process that spent its block at the paced
            // rate) is taken as it is; more idle than that restarts from now.
            let floor = now - (2.0 * self.interval_ms).ceil() as i64;
            let idle_first = self.last_tat.load(Ordering::Relaxed) < floor;
            for idle in [idle_first, !idle_first] {
                if self
                    .try_branch(idle, now, cost, tolerance, floor, count)
                    .await?
                {
                    let tat = if idle {
                        now + cost
                    } else {
                        now.max(floor) + cost
                    };
                    self.last_tat.fetch_max(tat, Ordering::Relaxed);
                    return Ok(None);
                }
            }
            match self.tat().await? {
                Some(t) if t >= floor => {
                    self.last_tat.fetch_max(t, Ordering::Relaxed);
                    return Ok(Some(t + cost - tolerance));
                }
                // Another process moved `tat` between the writes and the read: once more.
                _ => {}
            }
        }
        Ok(Some(now_millis() + cost))
    }

    /// One conditional write of the GCRA: the busy branch (`tat` within the tolerance moves
    /// by `cost`) or the idle one (`tat` older than `floor` restarts at `now + cost`).
    async fn try_branch(
        &self,
        idle: bool,
        now: i64,
        cost: i64,
        tolerance: i64,
        floor: i64,
        count: u32,
    ) -> Result<bool, StoreError> {
        if idle {
            self.update(
                "SET tat = :start, expires_at = :exp ADD reserved :count",
                "attribute_not_exists(tat) OR tat < :floor",
                &[
                    (":start", now + cost),
                    (":floor", floor),
                    (":count", i64::from(count)),
                ],
                now,
            )
            .await
        } else {
            self.update(
                "SET tat = tat + :cost, expires_at = :exp ADD reserved :count",
                "tat >= :floor AND tat <= :lim",
                &[
                    (":cost", cost),
                    (":floor", floor),
                    (":lim", now + (tolerance - cost).max(0)),
                    (":count", i64::from(count)),
                ],
                now,
            )
            .await
        }
    }

    /// A conditional UpdateItem of the quota item; `false` when its condition failed.
    async fn update(
        &self,
        set: &str,
        condition: &str,
        values: &[(&str, i64)],
        now: i64,
    ) -> Result<bool, StoreError> {
        let table = &self.store.cfg.leases_table;
        let mut req = self
            .store
            .ddb
            .update_item()
            .table_name(table)
            .key("link_id", s(&self.key))
            .update_expression(set)
            .condition_expression(condition)
            .expression_attribute_values(":exp", n(now / 1000 + 3600));
        for (name, v) in values {
            req = req.expression_attribute_values(*name, n(*v));
        }
        Ok(Store::held("UpdateItem", table, req.send().await)?.is_some())
    }

    /// The quota item's `tat`, if any.
    async fn tat(&self) -> Result<Option<i64>, StoreError> {
        let table = &self.store.cfg.leases_table;
        let out = self
            .store
            .ddb
            .get_item()
            .table_name(table)
            .key("link_id", s(&self.key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Store::aws_err("GetItem", table, e))?;
        Ok(out
            .item
            .and_then(|i| i.get("tat").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|v| v.parse().ok()))
    }
}
