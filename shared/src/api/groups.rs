//! Sync groups: a hub calendar each, owned by one application user.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{links, owned_group, ApiResult, ApiState, Caller, Problem};
use crate::config::now_millis;
use crate::model::Group;

fn group_json(g: &Group) -> Value {
    json!({"group_id": g.group_id, "name": g.name, "created_ms": g.created_ms})
}

/// Body of `POST /v1/groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Name shown to the user (1–200 characters).
    pub name: String,
}

/// `GET /v1/groups`: the caller's groups.
#[utoipa::path(
    get,
    path = "/v1/groups",
    operation_id = "listGroups",
    tag = "groups",
    responses(
        (status = 200, description = "The caller's groups: `{groups: [{group_id, name, created_ms}]}`"),
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn list(State(st): State<ApiState>, caller: Caller) -> ApiResult<Json<Value>> {
    let mut gs = st.ctx.store().groups_of_user(caller.0).await?;
    gs.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(Json(
        json!({"groups": gs.iter().map(group_json).collect::<Vec<_>>()}),
    ))
}

/// `POST /v1/groups` `{"name"}`: 201 with the new group.
#[utoipa::path(
    post,
    path = "/v1/groups",
    operation_id = "createGroup",
    tag = "groups",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 422")),
    request_body = NewGroup,
    responses(
        (status = 201, description = "The new group"),
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn create(
    State(st): State<ApiState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: NewGroup = serde_json::from_slice(&body).map_err(|e| {
        Problem::invalid_field("/name", format!("expected {{\"name\": \"…\"}}: {e}"))
    })?;
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Problem::invalid_field(
            "/name",
            "must be 1 to 200 characters",
        ));
    }
    let g = Group {
        group_id: format!("grp-{}", uuid::Uuid::now_v7().simple()),
        user_id: caller.0,
        name: name.into(),
        created_ms: now_millis(),
    };
    st.ctx.store().put_group(&g).await?;
    Ok((StatusCode::CREATED, Json(group_json(&g))).into_response())
}

/// `GET /v1/groups/{group_id}`: the group and its links.
#[utoipa::path(
    get,
    path = "/v1/groups/{group_id}",
    operation_id = "getGroup",
    tag = "groups",
    params(("group_id" = String, Path, description = "Sync group id")),
    responses(
        (status = 200, description = "The group and its links"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn get(
    State(st): State<ApiState>,
    caller: Caller,
    Path(group_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = owned_group(&st, caller, &group_id).await?;
    let mut doc = group_json(&g);
    let ls = st.ctx.store().links_of_group(&group_id).await?;
    doc["links"] = ls.iter().map(links::link_json).collect();
    Ok(Json(doc))
}

/// `DELETE /v1/groups/{group_id}`: disconnects every link (as `DELETE /v1/links/{id}`) and
/// removes the hub events; the copies on the members stay. 204.
#[utoipa::path(
    delete,
    path = "/v1/groups/{group_id}",
    operation_id = "deleteGroup",
    tag = "groups",
    params(("group_id" = String, Path, description = "Sync group id")),
    responses(
        (status = 204, description = "Links disconnected, hub events removed; copies on the members stay"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn delete(
    State(st): State<ApiState>,
    caller: Caller,
    Path(group_id): Path<String>,
) -> ApiResult<Response> {
    owned_group(&st, caller, &group_id).await?;
    let store = st.ctx.store();
    for l in store.links_of_group(&group_id).await? {
        links::disconnect(&st, &l).await?;
    }
    for ev in store.events_of_group(&group_id).await? {
        store.purge_event(&group_id, &ev.uid).await?;
    }
    store.delete_group(&group_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
