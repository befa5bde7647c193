//! The cursor item of a link: its provider cursor, the outbox of sync-back jobs it made
//! owed, the deletion window of the brake and the mark of a push's writes.

use std::collections::HashMap;

use super::{n, s, Store, StoreError};
use crate::config::now_millis;
use crate::provider::Cursor;

/// A link's cursor item.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CursorState {
    /// The provider's cursor (`None`: the next pull enumerates everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    /// Outbox: sync-back jobs owed to members since this cursor was saved, written with it
    /// and removed once sent; a later pull of the link sends what is still here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<crate::queue::SyncJob>,
    /// Deletions this link's pulls applied, as (epoch ms, count), pruned to the deletion
    /// brake's window ([`crate::engine::plan::brake`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deletions: Vec<(i64, u32)>,
    /// When the cursor item was last saved (epoch ms).
    #[serde(default)]
    pub updated_ms: i64,
    /// Set (epoch ms) by a push that wrote to the member after the cursor was saved; the
    /// next pull checks that the report lists those writes
    /// ([`crate::engine::PullFrom::written_after`]) and clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_ms: Option<i64>,
}

impl Store {
    /// The link's cursor (sync-token, ctag or feed validators), if any.
    pub async fn get_cursor(&self, link_id: &str) -> Result<Option<Cursor>, StoreError> {
        Ok(self.get_cursor_state(link_id).await?.cursor)
    }

    /// The link's cursor item: the cursor and the outbox of follow-up jobs not yet known to
    /// be sent.
    pub async fn get_cursor_state(&self, link_id: &str) -> Result<CursorState, StoreError> {
        let key = HashMap::from([("link_id".to_string(), s(link_id))]);
        let c: Option<CursorState> = self.get(&self.cfg.cursors_table, key).await?;
        Ok(c.unwrap_or_default())
    }

    /// The link and its cursor item in one BatchGetItem (strongly consistent): what a pull
    /// reads once it holds the lease.
    ///
    /// Errors: DynamoDB failure (unprocessed keys are asked for again, up to 5 times).
    pub async fn link_and_cursor(
        &self,
        link_id: &str,
    ) -> Result<(Option<crate::model::Link>, CursorState), StoreError> {
        let (links, cursors) = (&self.cfg.links_table, &self.cfg.cursors_table);
        let key = HashMap::from([("link_id".to_string(), s(link_id))]);
        let mut found: HashMap<String, super::Item> = self
            .batch_get(vec![(links.clone(), key.clone()), (cursors.clone(), key)])
            .await?
            .into_iter()
            .collect();
        let link = found
            .remove(links)
            .map(|i| Self::from_item(links, i))
            .transpose()?;
        let state = found
            .remove(cursors)
            .map(|i| Self::from_item(cursors, i))
            .transpose()?
            .unwrap_or_default();
        Ok((link, state))
    }

    /// Save the link's cursor (fenced, see [`Store::fenced`]); the outbox is emptied.
    pub async fn put_cursor(&self, link_id: &str, cursor: &Cursor) -> Result<(), StoreError> {
        let state = CursorState {
            cursor: Some(cursor.clone()),
            ..Default::default()
        };
        self.put_cursor_state(link_id, &state).await
    }

    /// Save the link's cursor and outbox in one write (fenced, see [`Store::fenced`]): the
    /// jobs a pull owes the other members are recorded with the cursor that makes them owed.
    pub async fn put_cursor_state(
        &self,
        link_id: &str,
        state: &CursorState,
    ) -> Result<(), StoreError> {
        let table = &self.cfg.cursors_table;
        let state = CursorState {
            updated_ms: now_millis(),
            ..state.clone()
        };
        let mut item = Self::to_item(table, &state)?;
        item.insert("link_id".into(), s(link_id));
        self.put_fenced(table, item).await
    }

    /// Note on the cursor item that a push wrote to the member (keeps the first time
    /// since the cursor was saved).
    ///
    /// Errors: DynamoDB failure; [`StoreError::Fenced`].
    pub async fn mark_written(&self, link_id: &str) -> Result<(), StoreError> {
        let table = &self.cfg.cursors_table;
        let mut req = self
            .ddb
            .update_item()
            .table_name(table)
            .key("link_id", s(link_id))
            .update_expression("SET written_ms = if_not_exists(written_ms, :now)")
            .expression_attribute_values(":now", n(now_millis()));
        if let Some(f) = self.fence {
            req = req
                .condition_expression("attribute_not_exists(fence) OR fence <= :f")
                .expression_attribute_values(":f", n(f));
        }
        match Self::held("UpdateItem", table, req.send().await)? {
            Some(_) => Ok(()),
            None => Err(self.refused(table)),
        }
    }

    /// Forget the link's cursor (the next pull re-enumerates).
    pub async fn delete_cursor(&self, link_id: &str) -> Result<(), StoreError> {
        let key = HashMap::from([("link_id".to_string(), s(link_id))]);
        self.delete(&self.cfg.cursors_table, key).await?;
        Ok(())
    }
}
