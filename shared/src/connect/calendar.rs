//! What a consent's new access token reads at the provider: the account's main calendar
//! (its id and the account's key), and, for a reconnection, the linked calendar, which must
//! be the same one ([`same_calendar`]).

use secrecy::ExposeSecret;

use super::CallbackError;
use crate::config::Ctx;
use crate::model::Link;
use crate::oauth::{self, OAuthProfile};

/// Longest calendar id taken from a provider's answer (Graph's are about 150 characters).
const MAX_CALENDAR_ID: usize = 512;

/// The calendar a consent connects — the one the caller named, else the account's main one
/// — and the account's [`oauth::account_key`], both from one read of the main calendar with
/// the new access token ([`oauth::DefaultCalendar`]).
///
/// Errors: with no calendar named, the lookup failed or answered no usable `id` (nothing is
/// stored then). With one named, a failed lookup only leaves the account unknown.
pub(super) async fn calendar_of(
    ctx: &Ctx,
    p: &OAuthProfile,
    api_root: &str,
    named: &str,
    tokens: &oauth::TokenSet,
) -> Result<(String, Option<String>), CallbackError> {
    let path = p.default_calendar.path;
    let main = main_calendar(ctx, p, api_root, tokens).await;
    match (named, main) {
        ("", Ok((id, account))) => Ok((id, account)),
        ("", Err(e)) => Err(CallbackError::Failed(anyhow::anyhow!(
            "the account's main calendar could not be read ({path}): {}",
            e.detail
        ))),
        (named, Ok((_, account))) => Ok((named.to_string(), account)),
        (named, Err(e)) => {
            tracing::warn!(detail = %e.detail, "the account's main calendar could not be read; the link's account stays unknown");
            Ok((named.to_string(), None))
        }
    }
}

/// One read of the main calendar of the account the new access token belongs to
/// ([`oauth::DefaultCalendar::path`] at `api_root`): its id and the account's
/// [`oauth::account_key`] (`None` when the answer names no account).
///
/// Errors: the read failed or answered no usable `id`.
pub(super) async fn main_calendar(
    ctx: &Ctx,
    p: &OAuthProfile,
    api_root: &str,
    tokens: &oauth::TokenSet,
) -> Result<(String, Option<String>), CalendarReadError> {
    let path = p.default_calendar.path;
    let url = format!("{}{path}", api_root.trim_end_matches('/'));
    let body = calendar_object_at(ctx, &url, path, tokens).await?;
    let id = default_calendar_id(&body).map_err(|detail| CalendarReadError {
        status: None,
        detail,
    })?;
    Ok((id, account_of(p, api_root, &body)))
}

/// The [`oauth::account_key`] of the account a main calendar object (JSON), read at
/// `api_root`, names at [`oauth::DefaultCalendar::account`]; `None` when it names none.
fn account_of(p: &OAuthProfile, api_root: &str, body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let name = v.pointer(p.default_calendar.account)?.as_str()?;
    oauth::account_key(p, api_root, &name.to_ascii_lowercase())
}

/// Why a calendar's id could not be read: the HTTP status when the provider answered one,
/// and a description naming `what` was read (never a token).
pub(super) struct CalendarReadError {
    status: Option<u16>,
    pub(super) detail: String,
}

/// `GET url` with the new access token: the `id` of the calendar object it answers. `what`
/// names the request in errors (a path, not the URL with its ids).
async fn calendar_id_at(
    ctx: &Ctx,
    url: &str,
    what: &str,
    tokens: &oauth::TokenSet,
) -> Result<String, CalendarReadError> {
    let body = calendar_object_at(ctx, url, what, tokens).await?;
    default_calendar_id(&body).map_err(|detail| CalendarReadError {
        status: None,
        detail,
    })
}

/// `GET url` with the new access token: the calendar object's JSON text (at most 64 KiB).
async fn calendar_object_at(
    ctx: &Ctx,
    url: &str,
    what: &str,
    tokens: &oauth::TokenSet,
) -> Result<String, CalendarReadError> {
    let failed = |status: Option<u16>, detail: String| CalendarReadError { status, detail };
    let resp = ctx
        .clients
        .http
        .get(url)
        .bearer_auth(tokens.access_token.expose_secret())
        .send()
        .await
        .map_err(|e| failed(None, crate::provider::transport(what, e).to_string()))?;
    let status = resp.status();
    let text = crate::provider::body_text(|| what.to_string(), resp, 64 * 1024, "calendar")
        .await
        .map_err(|e| failed(None, e.to_string()))?;
    if !status.is_success() {
        let code = status.as_u16();
        return Err(failed(Some(code), format!("HTTP {code}")));
    }
    Ok(text)
}

/// A reconnection must sign in to the account that connected `link`: its calendar, read
/// with the new access token, must answer with the id the link names. Another account's
/// token reads its own main calendar there, or gets 404 when the link names its calendar
/// by id (Google's `notFound` for a calendar not shared with the account, Graph's
/// `ErrorItemNotFound` for another mailbox's id).
/// Taking such tokens would make the link pull a stranger's calendar into the group and
/// take every event it does not find there for deleted. A link that names an alias
/// ([`oauth::DefaultCalendar::alias`], connected before the lookup) cannot be told apart and is
/// let through.
///
/// Errors: [`CallbackError::OtherAccount`] (the tokens are not stored), or `Failed` when
/// the calendar could not be read for another reason.
pub(super) async fn same_calendar(
    ctx: &Ctx,
    p: &OAuthProfile,
    link: &Link,
    tokens: &oauth::TokenSet,
) -> Result<(), CallbackError> {
    let what = "the reconnected calendar";
    let id = match calendar_id_at(ctx, &link.url, what, tokens).await {
        Ok(id) => id,
        // Not 403: Google also answers rate limits with it.
        Err(e) if e.status == Some(404) => {
            return Err(CallbackError::OtherAccount(format!(
                "the account signed in to cannot open this calendar ({})",
                e.detail
            )))
        }
        Err(e) => {
            return Err(CallbackError::Failed(anyhow::anyhow!(
                "{what} could not be read: {}",
                e.detail
            )))
        }
    };
    // The link's URL is `calendar_url(api root, id)`: compare its calendar segment.
    if link.url.ends_with(&(p.calendar_url)("", &id)) {
        return Ok(());
    }
    let named_alias = p
        .default_calendar
        .alias
        .is_some_and(|alias| link.url.ends_with(&(p.calendar_url)("", alias)));
    if named_alias {
        tracing::warn!(link = %link.link_id, "reconnected a link that names its calendar by an alias: the account cannot be compared");
        return Ok(());
    }
    Err(CallbackError::OtherAccount(
        "the account signed in to has another calendar there".into(),
    ))
}

/// The `id` of a calendar object (JSON), refused when missing, empty, over
/// [`MAX_CALENDAR_ID`] or holding control characters.
fn default_calendar_id(body: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not a calendar object: {e}"))?;
    match v.get("id").and_then(serde_json::Value::as_str) {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_CALENDAR_ID
                && !id.chars().any(char::is_control) =>
        {
            Ok(id.to_string())
        }
        Some(_) => Err("its id is empty, too long or holds control characters".into()),
        None => Err("the answer names no id".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_calendar_id_is_read_from_the_calendar_object() {
        let long = format!(r#"{{"id":"{}"}}"#, "A".repeat(MAX_CALENDAR_ID + 1));
        let table: &[(&str, Result<&str, &str>)] = &[
            (
                r#"{"id":"AAMkAGI2TG93AAA=","name":"Calendar","isDefaultCalendar":true}"#,
                Ok("AAMkAGI2TG93AAA="),
            ),
            (r#"{"name":"Calendar"}"#, Err("names no id")),
            (r#"{"id":""}"#, Err("empty")),
            (r#"{"id":42}"#, Err("names no id")),
            (r#"{"id":"a\u0000b"}"#, Err("control")),
            (&long, Err("too long")),
            ("<html>", Err("not a calendar object")),
        ];
        for (body, want) in table {
            match (default_calendar_id(body), want) {
                (Ok(id), Ok(w)) => assert_eq!(id, *w, "{body}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{body}: {e}"),
                (got, _) => panic!("{body}: {got:?}, want {want:?}"),
            }
        }
    }
}
