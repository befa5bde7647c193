//! The OAuth consents in progress (`<stack>-oauth-states`): stored at start, marked begun
//! once by the browser that opens the consent, taken once by the callback.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{n, s, Store, StoreError};
use crate::config::now_secs;
use crate::model::OAuthState;

impl Store {
    // ---- OAuth consents ----

    /// Remember a consent in progress.
    pub async fn put_oauth_state(&self, st: &OAuthState) -> Result<(), StoreError> {
        self.put(&self.cfg.oauth_states_table, st).await
    }

    /// Mark the consent `state` begun, once (conditional: it exists, has not begun and has
    /// not expired); returns it, or `None` otherwise.
    pub async fn begin_oauth_state(&self, state: &str) -> Result<Option<OAuthState>, StoreError> {
        let table = &self.cfg.oauth_states_table;
        let res = self
            .ddb
            .update_item()
            .table_name(table)
            .key("state", s(state))
            .update_expression("SET begun = :t")
            .condition_expression(
                "attribute_exists(#st) AND (attribute_not_exists(begun) OR begun = :f) AND expires_at > :now",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now_secs()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        Self::held("UpdateItem", table, res)?
            .and_then(|out| out.attributes)
            .map(|i| Self::from_item(table, i))
            .transpose()
    }

    /// Take (read and delete, once) the consent `state`; `None` when unknown, used or expired.
    pub async fn take_oauth_state(&self, state: &str) -> Result<Option<OAuthState>, StoreError> {
        let table = &self.cfg.oauth_states_table;
        let res = self
            .ddb
            .delete_item()
            .table_name(table)
            .key("state", s(state))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Self::aws_err("DeleteItem", table, e))?;
        let Some(item) = res.attributes else {
            return Ok(None);
        };
        let st: OAuthState = Self::from_item(table, item)?;
        Ok((st.expires_at > now_secs()).then_some(st))
    }
}
