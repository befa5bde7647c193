//! The mailbox's calendars: `GET /me/calendars`, `GET /me/calendars/{id}` and
//! `GET /me/calendar`, the main one (https://learn.microsoft.com/graph/api/calendar-get).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::events::OWNER;
use super::{not_found, Shared};

fn calendar_json(id: &str, c: &super::Calendar) -> Value {
    json!({"id": id, "name": c.name, "canEdit": true,
        "isDefaultCalendar": id == super::DEFAULT_CALENDAR_ID,
        "owner": {"name": OWNER.0, "address": OWNER.1}})
}

/// `GET /me/calendar`: the mailbox's main calendar
/// (https://learn.microsoft.com/graph/api/calendar-get).
pub(crate) async fn get_default_calendar(st: State<Shared>) -> Response {
    get_calendar(st, Path(super::DEFAULT_CALENDAR_ID.to_string())).await
}

pub(crate) async fn get_calendar(State(st): State<Shared>, Path(cal): Path<String>) -> Response {
    let s = st.lock().expect("emulator lock");
    match s.calendars.get(&cal) {
        Some(c) => Json(calendar_json(&cal, c)).into_response(),
        None => not_found(),
    }
}

pub(crate) async fn list_calendars(State(st): State<Shared>) -> Response {
    let s = st.lock().expect("emulator lock");
    let value: Vec<Value> = s
        .calendars
        .iter()
        .map(|(id, c)| calendar_json(id, c))
        .collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#me/calendars", s.base), "value": value})).into_response()
}
