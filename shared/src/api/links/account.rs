//! Another calendar of a connected account: `GET /v1/links/{link_id}/calendars` lists the
//! calendars of the account behind a link ([`ProviderModule::calendars`]), and
//! `POST /v1/groups/{group_id}/links` with `from_link` connects one of them with a copy of
//! that link's credentials, without a second consent or password.
//!
//! [`ProviderModule::calendars`]: crate::provider::registry::ProviderModule::calendars

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::connect::{calendar_names, NewLink};
use super::link_json;
use crate::api::{owned_link, ApiResult, ApiState, Caller, Problem};
use crate::config::Ctx;
use crate::model::{Link, LinkChoices, LinkStatus};
use crate::provider::account::{same_calendar_url, AccountCalendar};
use crate::provider::ProviderError;

/// The calendars of the account behind `link`.
///
/// Errors: 409 for a feed (no account) or a link whose credentials the provider refuses
/// (reconnect it first); 502 when the provider could not be asked.
async fn account_calendars(ctx: &Ctx, link: &Link) -> ApiResult<Vec<AccountCalendar>> {
    let module = link.provider.module();
    let reconnect = || {
        Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "link {} needs reconnecting before its account's calendars can be read",
                link.link_id
            ),
        )
    };
    if link.status == LinkStatus::ReconnectNeeded {
        return Err(reconnect());
    }
    match module.calendars(ctx, link).await {
        Ok(Some(all)) => Ok(all),
        Ok(None) => Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "a {} link is one calendar, with no account to list",
                module.info().display_name
            ),
        )),
        Err(e) => match e.downcast_ref::<ProviderError>() {
            Some(ProviderError::Unauthorized(_)) => Err(reconnect()),
            Some(pe) => Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "Bad Gateway",
                format!("{} answered: {pe}", module.info().display_name),
            )),
            None => Err(Problem::internal(e)),
        },
    }
}

/// `GET /v1/links/{link_id}/calendars`: `{calendars: [{id, name, main, writable,
/// link_ids}]}`, the calendars of the account the link connected (Google's calendar list,
/// the Outlook mailbox's calendars, the CalDAV account's calendar home), read with the
/// link's credentials. `link_ids` are the caller's links of that calendar, in any group.
#[utoipa::path(
    get,
    path = "/v1/links/{link_id}/calendars",
    operation_id = "listAccountCalendars",
    tag = "links",
    params(("link_id" = String, Path, description = "A Google, Outlook or CalDAV link")),
    responses(
        (status = 200, description = "`{calendars: [{id, name, main, writable, link_ids}]}`; connect one with `POST /v1/groups/{group_id}/links` and `{\"from_link\": link_id, \"calendar\": id}`"),
        (status = 409, description = "An ICS feed (no account), or a link whose credentials the provider refuses: reconnect it first"),
        (status = 502, description = "The provider could not be asked"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn calendars(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let link = owned_link(&st, caller, &link_id).await?;
    let all = account_calendars(&st.ctx, &link).await?;
    let mine = st.ctx.store().links_of_user(caller.0).await?;
    let out: Vec<Value> = all
        .iter()
        .map(|c| {
            let link_ids: Vec<&str> = mine
                .iter()
                .filter(|l| l.provider == link.provider && same_calendar_url(&l.url, &c.url))
                .map(|l| l.link_id.as_str())
                .collect();
            json!({"id": c.id, "name": c.name, "main": c.main, "writable": c.writable, "link_ids": link_ids})
        })
        .collect();
    Ok(Json(json!({ "calendars": out })))
}

/// `POST /v1/groups/{group_id}/links` with `from_link`: connect the calendar `calendar` (an
/// id from [`calendars`], or its name) of the account behind the caller's link `from_link`
/// to the group (already checked to be the caller's), with a copy of that link's
/// credentials in a secret of its own; its first sync is queued (and its push channel
/// started where the provider has one). 201 with the link.
///
/// Errors: 422 at `/from_link` (not the caller's link, or its provider is not `provider`),
/// at `/url`, `/username` or `/password` (credentials come from the link), at `/calendar`
/// (missing, or not one of the account's: the answer names them); 409 and 502 as
/// [`calendars`].
pub(super) async fn create_from_link(
    st: &ApiState,
    caller: Caller,
    group_id: &str,
    b: &NewLink,
    from_link: &str,
    choices: LinkChoices,
) -> ApiResult<Response> {
    let ctx = &st.ctx;
    let from = owned_link(st, caller, from_link).await.map_err(|p| {
        if p.status == StatusCode::NOT_FOUND {
            Problem::invalid_field("/from_link", "no such link of yours")
        } else {
            p
        }
    })?;
    let module = from.provider.module();
    let same_provider = b.provider == module.info().slug
        || (b.provider == "icloud" && from.provider == crate::model::ProviderKind::Caldav);
    if !same_provider {
        return Err(Problem::invalid_field(
            "/from_link",
            format!("is a {} link, not {:?}", module.info().slug, b.provider),
        ));
    }
    for (pointer, given) in [
        ("/url", b.url.is_some()),
        ("/username", b.username.is_some()),
        ("/password", b.password.is_some()),
    ] {
        if given {
            return Err(Problem::invalid_field(
                pointer,
                "not with from_link: the link's credentials are used",
            ));
        }
    }
    let want = b
        .calendar
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Problem::invalid_field(
                "/calendar",
                format!(
                    "is required with from_link: an id from GET /v1/links/{from_link}/calendars"
                ),
            )
        })?;
    let all = account_calendars(ctx, &from).await?;
    let Some(cal) = AccountCalendar::find(&all, want) else {
        let names = calendar_names(all.iter().map(|c| (c.name.as_str(), c.id.as_str())));
        return Err(Problem::invalid_field(
            "/calendar",
            format!("not a calendar of this account; choose one of {names}"),
        ));
    };
    super::refuse_linked_twice(ctx, group_id, from.provider, &cal.url).await?;
    let link_id = match module.oauth() {
        Some(p) => format!("{}-{}", p.slug(), uuid::Uuid::now_v7().simple()),
        None => format!("lnk-{}", uuid::Uuid::now_v7().simple()),
    };
    let secret_name = match module.oauth() {
        Some(p) => p.token_secret_name(&ctx.config.stack, &link_id),
        None => format!("{}/{}/{link_id}", ctx.config.stack, module.info().slug),
    };
    let from_arn = from.required_secret().map_err(Problem::internal)?;
    let credentials: Value =
        crate::secrets::read_json(&ctx.clients.secrets, from_arn, "the link's credentials")
            .await
            .map_err(Problem::internal)?;
    let mut link = Link::new(&link_id, group_id, caller.0, from.provider, &cal.url);
    link.display_name = b.display_name.clone().unwrap_or_else(|| cal.name.clone());
    link.account = from.account.clone();
    // The copied tokens' expiry (OAuth), so the refresher need not read the new secret early.
    link.token_expires_at = credentials["expires_at"].as_i64();
    choices.apply(&mut link);
    let arn = crate::secrets::put_json(&ctx.clients.secrets, &secret_name, &credentials)
        .await
        .map_err(Problem::internal)?;
    link.secret_arn = Some(arn);
    ctx.store().put_link(&link).await?;
    crate::connect::start_push_and_sync(ctx, &link, "connected")
        .await
        .map_err(Problem::internal)?;
    tracing::info!(link = %link.link_id, group = %group_id, from = %from.link_id, provider = module.info().slug, "another calendar of the account connected");
    Ok((StatusCode::CREATED, Json(link_json(&link))).into_response())
}
