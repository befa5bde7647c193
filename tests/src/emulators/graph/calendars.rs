//! The signed-in account's calendars: `GET /me/calendars`, `GET /me/calendars/{id}` and
//! `GET /me/calendar`, the main one (https://learn.microsoft.com/graph/api/calendar-get).
//! `me` is the account the bearer token was issued to (the default mailbox unless a test
//! added accounts): another mailbox's calendar is 404 `ErrorItemNotFound`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::events::OWNER;
use super::{not_found, Inner, Shared};

fn calendar_json(id: &str, c: &super::Calendar, default_id: &str) -> Value {
    let (name, address) = match &c.owner {
        Some(a) => (a.as_str(), a.as_str()),
        None => OWNER,
    };
    json!({"id": id, "name": c.name, "canEdit": true,
        "isDefaultCalendar": id == default_id,
        "owner": {"name": name, "address": address}})
}

/// The token's account (`None`: the default mailbox) and the id of its main calendar.
fn signed_in(s: &Inner, headers: &HeaderMap) -> (Option<String>, String) {
    let account = crate::emulators::bearer(headers)
        .and_then(|t| s.oauth.account_of(t))
        .map(str::to_string);
    let main = super::main_calendar_of(account.as_deref());
    (account, main)
}

/// `GET /me/calendar`: the signed-in account's main calendar
/// (https://learn.microsoft.com/graph/api/calendar-get).
pub(crate) async fn get_default_calendar(st: State<Shared>, headers: HeaderMap) -> Response {
    let main = signed_in(&st.lock().expect("emulator lock"), &headers).1;
    get_calendar(st, headers, Path(main)).await
}

/// `GET /me/calendars/{id}`: 404 `ErrorItemNotFound` for an id the signed-in account's
/// mailbox does not hold.
pub(crate) async fn get_calendar(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(cal): Path<String>,
) -> Response {
    let s = st.lock().expect("emulator lock");
    let (account, main) = signed_in(&s, &headers);
    match s.calendars.get(&cal) {
        Some(c) if c.owner == account => Json(calendar_json(&cal, c, &main)).into_response(),
        _ => not_found(),
    }
}

/// `GET /me/calendars`: the signed-in account's calendars, `$top` a page (default 10) and
/// an `@odata.nextLink` with `$skip` while more remain
/// (https://learn.microsoft.com/graph/paging); `$select` is ignored.
pub(crate) async fn list_calendars(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = st.lock().expect("emulator lock");
    let (account, main) = signed_in(&s, &headers);
    let number = |k: &str, default: usize| q.get(k).map_or(Ok(default), |v| v.parse::<usize>());
    let (Ok(top), Ok(skip)) = (number("$top", 10), number("$skip", 0)) else {
        return super::bad_request("BadRequest", "Invalid $top or $skip");
    };
    let top = top.clamp(1, 1000);
    let mine: Vec<Value> = s
        .calendars
        .iter()
        .filter(|(_, c)| c.owner == account)
        .map(|(id, c)| calendar_json(id, c, &main))
        .collect();
    let value: Vec<Value> = mine.iter().skip(skip).take(top).cloned().collect();
    let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#me/calendars", s.base), "value": value});
    if skip + top < mine.len() {
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/me/calendars?$top={top}&$skip={}",
            s.base,
            skip + top
        ));
    }
    Json(body).into_response()
}
