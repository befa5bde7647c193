//! The application's API (`/v1`, JSON, RFC 9457 problems): sync groups, links (connect,
//! settings, disconnect, sync now, run history, releasing a quarantined deletion), hub
//! events (the application's own calendar, as JSCalendar or iCalendar), the change feed and
//! conflicts. One axum [`Router`] serves API Gateway (through `lambda_http` in
//! `functions/api`) and the local stack (`make serve`).
//!
//! The settings page ([`app`], `/app/`) is served beside the API and calls it like any
//! application. Every `/v1` route needs a verified bearer token ([`auth`]); the user id
//! comes from it alone, and everything another user owns answers 404. `POST` routes honour
//! `Idempotency-Key` ([`idempotency`]).

pub mod app;
pub mod appsync;
pub mod auth;
mod conflicts;
pub mod decide;
pub mod events;
pub mod formats;
mod groups;
pub mod idempotency;
mod links;
pub mod openapi;
pub mod problem;
pub mod settings;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use auth::{Caller, Verifier};
pub use problem::{ApiResult, Problem};

use crate::config::Ctx;
use crate::model::{Group, Link};
use crate::queue::{QueueKind, SyncJob};

/// What every route gets: the stack's context and the token verifier.
#[derive(Clone)]
pub struct ApiState {
    /// Names and clients.
    pub ctx: Arc<Ctx>,
    /// Bearer token verification.
    pub auth: Arc<Verifier>,
}

impl ApiState {
    /// State for `ctx`, trusting the issuer configured in the environment
    /// ([`auth::AuthConfig::from_env`]).
    pub fn from_env(ctx: Ctx) -> Self {
        let http = ctx.clients.http.clone();
        Self {
            ctx: Arc::new(ctx),
            auth: Arc::new(Verifier::new(auth::AuthConfig::from_env(), http)),
        }
    }
}

/// The `/v1` routes and the settings page at `/app/` ([`app`], embedders from the
/// environment: [`app::AppConfig::from_env`]).
pub fn router(state: ApiState) -> Router {
    router_with(state, &app::AppConfig::from_env())
}

/// [`router`] with the settings page's embedders given.
pub fn router_with(state: ApiState, page: &app::AppConfig) -> Router {
    Router::new()
        .merge(app::router(page))
        .route("/v1/groups", get(groups::list).post(groups::create))
        .route(
            "/v1/groups/{group_id}",
            get(groups::get).delete(groups::delete),
        )
        .route(
            "/v1/groups/{group_id}/links",
            get(links::list).post(links::create),
        )
        .route(
            "/v1/groups/{group_id}/links/oauth/{provider}",
            post(links::oauth_start),
        )
        .route(
            "/v1/links/{link_id}",
            get(links::get).patch(links::patch).delete(links::delete),
        )
        .route("/v1/links/{link_id}/sync", post(links::sync_now))
        .route("/v1/links/{link_id}/reconnect", post(links::reconnect))
        .route("/v1/links/{link_id}/runs", get(links::runs))
        .route("/v1/links/{link_id}/calendars", get(links::calendars))
        .route("/v1/links/{link_id}/errors", get(links::errors))
        .route(
            "/v1/links/{link_id}/release-deletions",
            post(links::release_deletions),
        )
        .route("/v1/groups/{group_id}/events", get(events::pages::list))
        .route(
            "/v1/groups/{group_id}/events:batch",
            post(events::batch::batch),
        )
        .route(
            "/v1/groups/{group_id}/events/{event_id}",
            put(events::put).get(events::get).delete(events::delete),
        )
        .route("/v1/groups/{group_id}/changes", get(events::pages::changes))
        .route("/v1/groups/{group_id}/conflicts", get(conflicts::list))
        .route(
            "/v1/groups/{group_id}/conflicts/{action}",
            post(conflicts::resolve),
        )
        .route("/v1/autosync", post(appsync::autosync))
        .route("/v1/openapi.json", get(openapi::serve))
        .fallback(|| async { Problem::not_found("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .with_state(state)
}

/// The group `group_id` if `caller` owns it; 404 otherwise (also for other users' groups).
pub async fn owned_group(st: &ApiState, caller: Caller, group_id: &str) -> ApiResult<Group> {
    if !plausible_id(group_id) {
        return Err(Problem::not_found(format!("group {group_id:?}")));
    }
    match st.ctx.store().get_group(group_id).await? {
        Some(g) if g.user_id == caller.0 => Ok(g),
        _ => Err(Problem::not_found(format!("group {group_id:?}"))),
    }
}

/// The link `link_id` if `caller` owns it; 404 otherwise.
pub async fn owned_link(st: &ApiState, caller: Caller, link_id: &str) -> ApiResult<Link> {
    if !plausible_id(link_id) {
        return Err(Problem::not_found(format!("link {link_id:?}")));
    }
    match st.ctx.store().get_link(link_id).await? {
        Some(l) if l.user_id == caller.0 => Ok(l),
        _ => Err(Problem::not_found(format!("link {link_id:?}"))),
    }
}

/// Ids calsync issues are 1–200 characters (DynamoDB refuses empty keys): anything else
/// cannot exist.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200
}

/// Queue one sync-back job for each writable member of the group that syncs (read-only
/// feeds, links waiting for reconnection and links whose copies are being removed
/// excepted): a hub write reaches every member.
pub async fn queue_push(st: &ApiState, group_id: &str) -> ApiResult<usize> {
    let links = st.ctx.store().links_of_group(group_id).await?;
    let jobs: Vec<SyncJob> = links
        .iter()
        .filter(|l| !l.read_only() && l.status.syncs())
        .map(|l| SyncJob::unique(&l.link_id, "api"))
        .collect();
    st.ctx
        .queues()
        .send(QueueKind::SyncBack, &jobs)
        .await
        .map_err(Problem::internal)?;
    Ok(jobs.len())
}

/// An opaque page cursor (base64url of the JSON of `v`).
pub fn encode_cursor<T: Serialize>(v: &T) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(v).unwrap_or_default())
}

/// The value of a cursor from [`encode_cursor`]; 422 naming `cursor` otherwise.
pub fn decode_cursor<T: DeserializeOwned>(c: &str) -> ApiResult<T> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Problem::invalid_parameter("cursor", "not a cursor this API issued"))
}
