//! Leases (one worker per link at a time) with fencing tokens: each acquisition sets the
//! lease's `fence` to the acquisition time (epoch ms), strictly above the last one, so
//! tokens keep increasing even after the lease item is released or removed by its TTL; mapping and cursor writes made under a lease carry it, and DynamoDB
//! refuses a write whose token is older than the one already on the item
//! (`attribute_not_exists(fence) OR fence <= :f`). A worker whose lease expired while it
//! was still working (a stalled Lambda, a long GC pause of the network) can therefore not
//! overwrite what the worker that took the lease over has written.
//! (Kleppmann, "How to do distributed locking", 2016: the fencing-token pattern.)

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{n, s, Item, Store, StoreError};
use crate::config::{now_millis, now_secs};

/// A held lease: who holds it and its fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased key (a link id, or `token:<arn>` for a token refresh).
    pub key: String,
    /// The holder (a uuid per job).
    pub owner: String,
    /// Fencing token: increases with every acquisition of this key.
    pub fence: i64,
}

pub(super) const FENCE_CONDITION: &str = "attribute_not_exists(fence) OR fence <= :f";

impl Store {
    /// [`Self::acquire_lease`], waiting up to `wait` for another owner's lease to be let go
    /// of or to expire: tried again after 0.1 s, doubling to 2 s. `None`: still held then.
    ///
    /// Errors: DynamoDB failure.
    pub async fn acquire_lease_waiting(
        &self,
        key: &str,
        owner: &str,
        ttl_secs: i64,
        wait: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            if let Some(lease) = self.acquire_lease(key, owner, ttl_secs).await? {
                return Ok(Some(lease));
            }
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            tracing::debug!(key, "lease held by another owner; waiting");
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
        }
    }

    /// Take the lease on `key` for `ttl_secs` (seconds) as `owner`; an expired lease is taken
    /// over. `None` when another owner holds an unexpired lease. The new [`Lease::fence`] is
    /// now (epoch ms) and above the last holder's.
    ///
    /// Errors: DynamoDB failure.
    pub async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl_secs: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let table = &self.cfg.leases_table;
        let now = now_secs();
        let fence = now_millis();
        let res = self
            .ddb
            .update_item()
            .table_name(table)
            .key("link_id", s(key))
            .update_expression("SET #o = :me, expires_at = :exp, fence = :f")
            .condition_expression(
                "(attribute_not_exists(link_id) OR expires_at < :now OR #o = :me) \
                 AND (attribute_not_exists(fence) OR fence < :f)",
            )
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":exp", n(now + ttl_secs))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":f", n(fence))
            .send()
            .await;
        Ok(Self::held("UpdateItem", table, res)?.map(|_| Lease {
            key: key.into(),
            owner: owner.into(),
            fence,
        }))
    }

    /// Extend `lease` to `ttl_secs` from now: `false` when it is no longer held (expired and
    /// taken over), so the holder must stop.
    ///
    /// Errors: DynamoDB failure.
    pub async fn renew_lease(&self, lease: &Lease, ttl_secs: i64) -> Result<bool, StoreError> {
        let table = &self.cfg.leases_table;
        let res = self
            .ddb
            .update_item()
            .table_name(table)
            .key("link_id", s(&lease.key))
            .update_expression("SET expires_at = :exp")
            .condition_expression("#o = :me AND fence = :f")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(&lease.owner))
            .expression_attribute_values(":f", n(lease.fence))
            .expression_attribute_values(":exp", n(now_secs() + ttl_secs))
            .send()
            .await;
        Ok(Self::held("UpdateItem", table, res)?.is_some())
    }

    /// Release the lease on `key` if `owner` still holds it.
    pub async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let table = &self.cfg.leases_table;
        let res = self
            .ddb
            .delete_item()
            .table_name(table)
            .key("link_id", s(key))
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        // Not held any more (expired and taken over): nothing to release.
        Self::held("DeleteItem", table, res).map(|_| ())
    }

    /// This store with mapping and cursor writes fenced by `lease`: each carries
    /// `fence = lease.fence`, and is refused ([`StoreError::Fenced`]) when the item already
    /// carries a newer token.
    pub fn fenced(&self, lease: &Lease) -> Store {
        Store {
            fence: Some(lease.fence),
            ..self.clone()
        }
    }

    /// PutItem of `item`, fenced when this store is.
    pub(super) async fn put_fenced(&self, table: &str, item: Item) -> Result<(), StoreError> {
        let action = self.fenced_action(table, item)?;
        self.put_one_by_one(vec![action]).await.map(|_| ())
    }

    /// DeleteItem of `key`, fenced when this store is.
    pub(super) async fn delete_fenced(
        &self,
        table: &str,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let mut req = self
            .ddb
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        if let Some(f) = self.fence {
            req = req
                .condition_expression(FENCE_CONDITION)
                .expression_attribute_values(":f", n(f));
        }
        match Self::held("DeleteItem", table, req.send().await)? {
            Some(out) => Ok(out.attributes),
            None => Err(self.refused(table)),
        }
    }

    pub(super) fn refused(&self, table: &str) -> StoreError {
        StoreError::Fenced {
            table: table.into(),
            fence: self.fence.unwrap_or_default(),
        }
    }
}
