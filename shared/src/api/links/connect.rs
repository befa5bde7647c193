//! Connecting a calendar: CalDAV / iCloud (the server asked first, through discovery when
//! the URL is no calendar), ICS feeds (read once), and the consent URL of the providers
//! connected through OAuth ([`crate::connect`]).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

use super::link_json;
use crate::api::settings::frequency_secs;
use crate::api::{owned_group, ApiResult, ApiState, Caller, Problem};
use crate::model::{ConflictPolicy, Link, LinkChoices, ProviderKind};
use crate::provider::caldav::CalDav;
use crate::provider::{ics::IcsFeed, redacted, Provider, ProviderError};
use crate::queue::{QueueKind, SyncJob};

/// iCloud's CalDAV entry point (discovery starts here when no URL is given).
pub const ICLOUD_CALDAV: &str = "https://caldav.icloud.com/";

/// Body of `POST /v1/groups/{group_id}/links`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// `caldav`, `icloud` or `ics` (OAuth providers such as Google:
    /// `POST …/links/oauth/{provider}`); with `from_link`, that link's provider (`google`,
    /// `outlook`, `caldav`; `icloud` for a CalDAV link too).
    pub provider: String,
    /// Connect another calendar of the account behind this link of yours (its credentials
    /// are copied, no consent or password is asked): `calendar` names which, by an id from
    /// `GET /v1/links/{link_id}/calendars` or its name; `url`, `username` and `password`
    /// are not given.
    #[serde(default)]
    pub from_link: Option<String>,
    /// CalDAV: a calendar collection URL, or an account / server URL to discover from
    /// (iCloud: optional, default [`ICLOUD_CALDAV`]); ICS: the feed URL.
    #[serde(default)]
    pub url: Option<String>,
    /// CalDAV: the account name (Apple ID for iCloud).
    #[serde(default)]
    pub username: Option<String>,
    /// CalDAV: the password (iCloud: an app-specific password from appleid.apple.com).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
    /// CalDAV: which discovered calendar (display name or URL) when `url` is no calendar;
    /// with `from_link`: which calendar of the account (id or name).
    #[serde(default)]
    pub calendar: Option<String>,
    /// Name shown to the user.
    #[serde(default)]
    pub display_name: Option<String>,
    /// See [`frequency_secs`]; default hourly.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "hourly")]
    pub frequency: Option<Value>,
    /// `merge` (default), `prefer-hub`, `prefer-remote`, `manual`.
    #[serde(default)]
    pub conflict_policy: Option<String>,
}

/// The `frequency` (see [`frequency_secs`]) and `conflict_policy` of a connection body.
///
/// Errors: 422 at `/frequency` or `/conflict_policy` naming what is accepted.
fn link_choices(frequency: Option<&Value>, policy: Option<&str>) -> ApiResult<LinkChoices> {
    Ok(LinkChoices {
        frequency_secs: frequency
            .map(frequency_secs)
            .transpose()
            .map_err(|e| Problem::invalid_field("/frequency", e))?,
        conflict_policy: policy
            .map(str::parse::<ConflictPolicy>)
            .transpose()
            .map_err(|e: String| Problem::invalid_field("/conflict_policy", e))?,
    })
}

/// The calendars `(name, id)` an error offers to choose from: the first 20 as `"name" (id)`,
/// how many more, or "the account has no calendars".
pub(super) fn calendar_names<'a>(all: impl ExactSizeIterator<Item = (&'a str, &'a str)>) -> String {
    let total = all.len();
    let mut names: Vec<String> = all
        .take(20)
        .map(|(name, id)| format!("{name:?} ({id})"))
        .collect();
    if total > 20 {
        names.push(format!("and {} more", total - 20));
    }
    if names.is_empty() {
        "the account has no calendars".into()
    } else {
        names.join(", ")
    }
}

/// Read the feed at `url` once (a connection or reconnection is checked before anything is
/// stored); a URL that is no readable feed is 422 at `/url` with the reason.
pub(super) async fn feed_readable(ctx: &crate::config::Ctx, url: &str) -> ApiResult<()> {
    let feed = IcsFeed::new(ctx.clients.http.clone(), url)
        .map_err(|e| Problem::invalid_field("/url", e.to_string()))?;
    feed.pull(None)
        .await
        .map(|_| ())
        .map_err(|e| Problem::invalid_field("/url", format!("the feed could not be read: {e}")))
}

pub(super) fn caldav_problem(e: ProviderError) -> Problem {
    match e {
        ProviderError::Unauthorized(_) => Problem::invalid_field(
            "/password",
            "the server refused the username or password (HTTP 401); iCloud needs an app-specific password",
        ),
        other => Problem::invalid_field("/url", format!("the CalDAV server answered: {other}")),
    }
}

/// `POST /v1/groups/{group_id}/links`: connect a CalDAV / iCloud calendar or an ICS feed.
/// The server is asked first (a refused password or a URL that is no calendar answers 422
/// with its reason, and nothing is stored); the password and the feed address go to Secrets
/// Manager; the first sync is queued. 201 with the link; 409 when the group links the
/// calendar already ([`super::refuse_linked_twice`]).
#[utoipa::path(
    post,
    path = "/v1/groups/{group_id}/links",
    operation_id = "createLink",
    tag = "links",
    params(("group_id" = String, Path, description = "Sync group id"), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 422")),
    request_body = NewLink,
    responses(
        (status = 201, description = "The link; its first sync is queued"),
        (status = 409, description = "The group links this calendar or feed already (the answer names that link)"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn create(
    State(st): State<ApiState>,
    caller: Caller,
    Path(group_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    owned_group(&st, caller, &group_id).await?;
    let b: NewLink = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid_field("/", format!("not a link: {e}")))?;
    let choices = link_choices(b.frequency.as_ref(), b.conflict_policy.as_deref())?;
    if let Some(from) = &b.from_link {
        return super::account::create_from_link(&st, caller, &group_id, &b, from, choices).await;
    }
    let link_id = format!("lnk-{}", uuid::Uuid::now_v7().simple());
    let ctx = &st.ctx;
    let (mut link, secret_name, secret) =
        match b.provider.as_str() {
            "caldav" | "icloud" => {
                let url = match (&b.url, b.provider.as_str()) {
                    (Some(u), _) => u.clone(),
                    (None, "icloud") => ICLOUD_CALDAV.to_string(),
                    (None, _) => return Err(Problem::invalid_field("/url", "is required")),
                };
                let username = b
                    .username
                    .clone()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| Problem::invalid_field("/username", "is required"))?;
                let password = b
                    .password
                    .clone()
                    .ok_or_else(|| Problem::invalid_field("/password", "is required"))?;
                let client = CalDav::new(
                    ctx.clients.http.clone(),
                    &url,
                    &username,
                    password.clone(),
                    false,
                )
                .map_err(|e| Problem::invalid_field("/url", e.to_string()))?;
                let cal = match client.probe().await.map_err(caldav_problem)? {
                    Some(c) => c,
                    None => {
                        let found = client.discover(&url).await.map_err(caldav_problem)?;
                        let pick = b.calendar.as_deref().and_then(|want| {
                            found
                                .iter()
                                .find(|c| c.display_name == want || c.url == want)
                                .cloned()
                        });
                        match pick {
                            Some(c) => c,
                            None => {
                                let pointer = if b.calendar.is_some() {
                                    "/calendar"
                                } else {
                                    "/url"
                                };
                                let names = calendar_names(
                                    found.iter().map(|c| (c.display_name.as_str(), c.url.as_str())),
                                );
                                return Err(Problem::invalid_field(
                                    pointer,
                                    format!("not a calendar collection; choose one with \"calendar\": {names}"),
                                ));
                            }
                        }
                    }
                };
                super::refuse_linked_twice(ctx, &group_id, ProviderKind::Caldav, &cal.url)
                    .await?;
                let mut link = Link::new(
                    &link_id,
                    &group_id,
                    caller.0,
                    ProviderKind::Caldav,
                    &cal.url,
                );
                link.display_name =
                    b.display_name
                        .clone()
                        .unwrap_or(if cal.display_name.is_empty() {
                            "CalDAV".into()
                        } else {
                            cal.display_name.clone()
                        });
                let secret = {
                    use secrecy::ExposeSecret;
                    json!({"username": username, "password": password.expose_secret()})
                };
                (
                    link,
                    format!("{}/caldav/{link_id}", ctx.config.stack),
                    secret,
                )
            }
            "ics" => {
                let url = b
                    .url
                    .clone()
                    .ok_or_else(|| Problem::invalid_field("/url", "is required"))?;
                super::refuse_linked_twice(ctx, &group_id, ProviderKind::Ics, &url).await?;
                feed_readable(ctx, &url).await?;
                let mut link = Link::new(
                    &link_id,
                    &group_id,
                    caller.0,
                    ProviderKind::Ics,
                    &redacted(&url),
                );
                link.url_digest = Some(crate::provider::account::url_digest(&url));
                link.display_name = b
                    .display_name
                    .clone()
                    .unwrap_or_else(|| "Subscription".into());
                (
                    link,
                    format!("{}/ics/{link_id}", ctx.config.stack),
                    json!({"url": url}),
                )
            }
            other if oauth_kind(other).is_some() => {
                return Err(Problem::invalid_field(
                    "/provider",
                    format!("{other} calendars connect through POST /v1/groups/{{group_id}}/links/oauth/{other}"),
                ))
            }
            other => {
                return Err(Problem::invalid_field(
                    "/provider",
                    format!("expected caldav, icloud or ics, got {other:?}"),
                ))
            }
        };
    choices.apply(&mut link);
    let arn = crate::secrets::put_json(&ctx.clients.secrets, &secret_name, &secret)
        .await
        .map_err(Problem::internal)?;
    link.secret_arn = Some(arn);
    ctx.store().put_link(&link).await?;
    ctx.queues()
        .send(
            QueueKind::SyncJobs,
            &[SyncJob::unique(&link.link_id, "connected")],
        )
        .await
        .map_err(Problem::internal)?;
    tracing::info!(link = %link.link_id, group = %group_id, provider = ?link.provider, "calendar connected");
    Ok((StatusCode::CREATED, Json(link_json(&link))).into_response())
}

/// The provider named `slug` when it connects through OAuth.
fn oauth_kind(slug: &str) -> Option<ProviderKind> {
    ProviderKind::from_slug(slug).filter(|k| k.module().oauth().is_some())
}

/// Body of `POST …/links/oauth/{provider}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthStart {
    /// Calendar id in the provider's terms (Google: a calendarList id or `primary`; Outlook:
    /// an id from `GET /me/calendars`); default: the account's main calendar (Outlook's is
    /// read after consent with `GET /me/calendar`).
    #[serde(default)]
    pub calendar_id: Option<String>,
    /// Name shown to the user.
    #[serde(default)]
    pub display_name: Option<String>,
    /// As for `POST …/links`: see [`frequency_secs`]; default hourly.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "daily")]
    pub frequency: Option<Value>,
    /// `merge` (default), `prefer-hub`, `prefer-remote`, `manual`.
    #[serde(default)]
    pub conflict_policy: Option<String>,
}

/// `POST /v1/groups/{group_id}/links/oauth/{provider}`: `{consent_url}` for the caller and
/// this group. Send the user's browser there: it is bound to that browser by a cookie, and
/// the consent is single-use and expires in 10 minutes.
#[utoipa::path(
    post,
    path = "/v1/groups/{group_id}/links/oauth/{provider}",
    operation_id = "startOAuth",
    tag = "links",
    params(("group_id" = String, Path, description = "Sync group id"), ("provider" = String, Path, description = "A provider connected through OAuth: `google` or `outlook`")),
    request_body = OAuthStart,
    responses(
        (status = 200, description = "`{consent_url}`: send the user's browser there (single use, 10 minutes)"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn oauth_start(
    State(st): State<ApiState>,
    caller: Caller,
    Path((group_id, provider)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    owned_group(&st, caller, &group_id).await?;
    let Some(kind) = oauth_kind(&provider) else {
        let names: Vec<&str> = ProviderKind::ALL
            .iter()
            .filter(|k| k.module().oauth().is_some())
            .map(|k| k.info().slug)
            .collect();
        return Err(Problem::invalid_parameter(
            "provider",
            format!("expected {}, got {provider:?}", names.join(" or ")),
        ));
    };
    let b: OAuthStart = if body.is_empty() {
        OAuthStart::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Problem::invalid_field("/", e.to_string()))?
    };
    let choices = link_choices(b.frequency.as_ref(), b.conflict_policy.as_deref())?;
    let req = crate::connect::ConnectRequest {
        provider: kind,
        group_id,
        user_id: caller.0,
        calendar_id: b
            .calendar_id
            .map(|c| c.trim().to_string())
            .unwrap_or_default(),
        display_name: b
            .display_name
            .unwrap_or_else(|| kind.info().display_name.into()),
        choices,
    };
    let url = crate::connect::start(&st.ctx, &req)
        .await
        .map_err(Problem::internal)?;
    Ok(Json(json!({"consent_url": url})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_the_first_twenty_calendars_and_how_many_more() {
        let many: Vec<(String, String)> = (0..25)
            .map(|i| (format!("Cal {i}"), format!("id{i}")))
            .collect();
        let named = |n: usize| {
            calendar_names(
                many[..n]
                    .iter()
                    .map(|(name, id)| (name.as_str(), id.as_str())),
            )
        };
        let table: &[(usize, &str, &str)] = &[
            (
                0,
                "the account has no calendars",
                "the account has no calendars",
            ),
            (1, "\"Cal 0\" (id0)", "\"Cal 0\" (id0)"),
            (2, "\"Cal 0\" (id0), ", "\"Cal 1\" (id1)"),
            (20, "\"Cal 0\" (id0), ", "\"Cal 19\" (id19)"),
            (25, "\"Cal 0\" (id0), ", "\"Cal 19\" (id19), and 5 more"),
        ];
        for (n, starts, ends) in table {
            let got = named(*n);
            assert!(got.starts_with(starts) && got.ends_with(ends), "{n}: {got}");
        }
        assert!(!named(25).contains("Cal 20"));
    }
}
