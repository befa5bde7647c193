//! The Google Calendar v3 emulator against the documented behaviour and the discovery
//! document (`../shared/corpus/google/discovery/calendar.v3.json`).

use std::collections::BTreeSet;
use std::path::Path;

use calsync_e2e::emulators::google::{Config, GoogleEmulator};
use serde_json::{json, Value};

const CAL: &str = "primary";

pub(crate) struct Api {
    emu: GoogleEmulator,
    http: reqwest::Client,
}

impl Api {
    pub(crate) async fn start(config: Config) -> Self {
        let emu = GoogleEmulator::start("127.0.0.1:0", config).await.unwrap();
        emu.add_calendar(CAL, "Test", "Europe/Berlin");
        Self {
            emu,
            http: reqwest::Client::new(),
        }
    }
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/calendar/v3/calendars/{CAL}/events{path}", self.emu.url)
    }
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth("user-1-token");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    pub(crate) async fn list(&self, query: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, query, None, &[]).await
    }
    /// All items of a listing, following nextPageToken.
    pub(crate) async fn list_all(&self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let sep = if query.is_empty() { "?" } else { "&" };
            let q = match &token {
                Some(t) => format!("{query}{sep}pageToken={t}"),
                None => query.to_string(),
            };
            let (status, body) = self.list(&q).await;
            assert_eq!(status, 200, "{body}");
            out.extend(body["items"].as_array().unwrap().iter().cloned());
            match body.get("nextPageToken").and_then(Value::as_str) {
                Some(t) => token = Some(t.to_string()),
                None => return out,
            }
        }
    }
    pub(crate) async fn insert(&self, id: &str, summary: &str) -> (u16, Value) {
        let ev = json!({"id": id, "summary": summary, "start": {"dateTime": "2027-01-04T10:00:00+01:00"}, "end": {"dateTime": "2027-01-04T11:00:00+01:00"}});
        self.call(reqwest::Method::POST, "?sendUpdates=none", Some(ev), &[])
            .await
    }
}

pub(crate) fn discovery() -> Option<Value> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/google/discovery/calendar.v3.json");
    match std::fs::read_to_string(&p) {
        Ok(t) => Some(serde_json::from_str(&t).unwrap()),
        Err(_) => {
            println!("SKIPPED discovery checks: {} not found", p.display());
            None
        }
    }
}

fn schema_keys(d: &Value, schema: &str) -> BTreeSet<String> {
    d["schemas"][schema]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Every field the emulator emits is a documented field of its schema.
pub(crate) fn assert_conforms(d: &Value, schema: &str, v: &Value) {
    let keys = schema_keys(d, schema);
    for k in v.as_object().unwrap().keys() {
        assert!(keys.contains(k), "{schema} has no field {k:?}: {v}");
    }
}

#[tokio::test]
async fn paging_sync_tokens_and_cancelled_events_follow_the_sync_guide() {
    let api = Api::start(Config {
        page_cap: 3,
        ..Default::default()
    })
    .await;
    for i in 0..7 {
        assert_eq!(
            api.insert(&format!("event{i:05}"), &format!("E{i}"))
                .await
                .0,
            200
        );
    }
    // Full sync in pages of at most 3; exactly one of nextPageToken / nextSyncToken per page.
    let (mut seen, mut page_token, mut pages) = (Vec::new(), None::<String>, 0);
    let sync_token;
    loop {
        let q = match &page_token {
            Some(t) => format!("?maxResults=250&pageToken={t}"),
            None => "?maxResults=250".to_string(),
        };
        let (status, body) = api.list(&q).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        assert!(
            body.get("nextPageToken").is_some() ^ body.get("nextSyncToken").is_some(),
            "{body}"
        );
        for it in body["items"].as_array().unwrap() {
            seen.push(it["id"].as_str().unwrap().to_string());
        }
        if let Some(d) = discovery() {
            assert_conforms(&d, "Events", &body);
            for it in body["items"].as_array().unwrap() {
                assert_conforms(&d, "Event", it);
            }
        }
        match body.get("nextPageToken").and_then(Value::as_str) {
            Some(t) => page_token = Some(t.to_string()),
            None => {
                sync_token = body["nextSyncToken"].as_str().map(str::to_string);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7);
    let token = sync_token.unwrap();

    // No change: an empty page with a new sync token.
    let (status, quiet) = api.list(&format!("?syncToken={token}")).await;
    assert_eq!(status, 200);
    assert_eq!(quiet["items"], json!([]));
    assert!(quiet["nextSyncToken"].is_string());

    // An update and a delete: both reported; the deleted one with only the documented fields.
    let (_, e1) = api
        .call(reqwest::Method::GET, "/event00001", None, &[])
        .await;
    let mut changed = e1.clone();
    changed["summary"] = json!("E1 renamed");
    assert_eq!(
        api.call(
            reqwest::Method::PUT,
            "/event00001?sendUpdates=none",
            Some(changed),
            &[]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api.call(
            reqwest::Method::DELETE,
            "/event00002?sendUpdates=none",
            None,
            &[]
        )
        .await
        .0,
        204
    );
    let (_, inc) = api.list(&format!("?syncToken={token}")).await;
    let items = inc["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{inc}");
    let deleted = items.iter().find(|i| i["id"] == "event00002").unwrap();
    assert_eq!(deleted["status"], "cancelled");
    assert!(
        deleted.get("summary").is_none() && deleted.get("start").is_none(),
        "only id/status: {deleted}"
    );
    // A full listing hides cancelled events unless showDeleted.
    assert_eq!(api.list_all("").await.len(), 6);
    assert_eq!(api.list_all("?showDeleted=true").await.len(), 7);
}

#[tokio::test]
async fn sync_tokens_reject_forbidden_parameters_and_expire_with_410() {
    let api = Api::start(Config::default()).await;
    api.insert("abcde00001", "A").await;
    let (_, full) = api.list("").await;
    let token = full["nextSyncToken"].as_str().unwrap().to_string();
    let (status, body) = api
        .list(&format!("?syncToken={token}&timeMin=2027-01-01T00:00:00Z"))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = api
        .list(&format!("?syncToken={token}&showDeleted=false"))
        .await;
    assert_eq!(status, 400);
    let expected_410 = json!({"error": {"errors": [{"domain": "calendar", "reason": "fullSyncRequired",
        "message": "Sync token is no longer valid, a full sync is required.", "locationType": "parameter", "location": "syncToken"}],
        "code": 410, "message": "Sync token is no longer valid, a full sync is required."}});
    assert_eq!(
        api.list("?syncToken=garbage").await,
        (410, expected_410.clone())
    );
    let resp = api
        .http
        .post(format!(
            "{}/emulator/calendars/{CAL}/expire-sync-tokens",
            api.emu.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        api.list(&format!("?syncToken={token}")).await,
        (410, expected_410)
    );
    let (status, _) = api.list("?maxResults=2501").await;
    assert_eq!(status, 400);
    let (status, _) = api.list("?notAParameter=1").await;
    assert_eq!(status, 400);
    let (status, body) = api.list("?timeMin=2027-01-01T00:00:00Z").await;
    assert_eq!(
        status, 400,
        "filters that are not emulated are refused, not ignored: {body}"
    );
}

#[tokio::test]
async fn ids_etags_and_preconditions() {
    let api = Api::start(Config::default()).await;
    let (status, ev) = api.insert("meeting0001", "A").await;
    assert_eq!(status, 200);
    assert_eq!(ev["iCalUID"], "meeting0001@google.com");
    let (status, dup) = api.insert("meeting0001", "again").await;
    assert_eq!(status, 409);
    assert_eq!(dup["error"]["errors"][0]["reason"], "duplicate");
    assert_eq!(
        api.insert("UPPERCASE1", "bad id").await.0,
        400,
        "ids are base32hex"
    );
    assert_eq!(api.insert("abc", "too short").await.0, 400);
    let missing_end = json!({"summary": "x", "start": {"date": "2027-01-01"}});
    assert_eq!(
        api.call(reqwest::Method::POST, "", Some(missing_end), &[])
            .await
            .0,
        400
    );

    let etag = ev["etag"].as_str().unwrap().to_string();
    assert_eq!(
        api.call(
            reqwest::Method::GET,
            "/meeting0001",
            None,
            &[("If-None-Match", &etag)]
        )
        .await
        .0,
        304
    );
    let (status, patched) = api
        .call(
            reqwest::Method::PATCH,
            "/meeting0001?sendUpdates=none",
            Some(json!({"extendedProperties": {"private": {"calsync": "u1"}}})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_ne!(patched["etag"], json!(etag), "etag changes on every write");
    assert_eq!(patched["summary"], "A", "patch keeps other fields");
    let (status, stale) = api
        .call(
            reqwest::Method::PATCH,
            "/meeting0001",
            Some(json!({"summary": "B"})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(status, 412);
    assert_eq!(stale["error"]["errors"][0]["reason"], "conditionNotMet");
    let (_, removed) = api
        .call(
            reqwest::Method::PATCH,
            "/meeting0001?sendUpdates=none",
            Some(json!({"extendedProperties": {"private": {"calsync": null}}})),
            &[],
        )
        .await;
    assert_eq!(
        removed["extendedProperties"]["private"],
        json!({}),
        "null removes a key"
    );
    assert_eq!(
        api.call(
            reqwest::Method::DELETE,
            "/meeting0001",
            None,
            &[("If-Match", "\"0\"")]
        )
        .await
        .0,
        412
    );
    assert_eq!(
        api.call(
            reqwest::Method::DELETE,
            "/meeting0001?sendUpdates=none",
            None,
            &[]
        )
        .await
        .0,
        204
    );
    let (status, gone) = api
        .call(reqwest::Method::DELETE, "/meeting0001", None, &[])
        .await;
    assert_eq!(status, 410);
    assert_eq!(gone["error"]["errors"][0]["reason"], "deleted");
    let (status, got) = api
        .call(reqwest::Method::GET, "/meeting0001", None, &[])
        .await;
    assert_eq!(
        (status, got["status"].clone()),
        (200, json!("cancelled")),
        "get returns cancelled events"
    );
    assert_eq!(
        api.call(reqwest::Method::GET, "/nosuchevent", None, &[])
            .await
            .0,
        404
    );

    let sends = api.emu.sends();
    assert_eq!(sends.len(), 4, "{sends:?}");
    assert!(
        sends
            .iter()
            .all(|s| s.send_updates.as_deref() == Some("none")),
        "{sends:?}"
    );
    let recorded: Value = api
        .http
        .get(format!("{}/emulator/sends", api.emu.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(recorded.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn quota_faults_and_auth() {
    let api = Api::start(Config {
        quota_per_minute: 3,
        ..Default::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(api.list("").await.0, 200);
    }
    let (status, body) = api.list("").await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "userRateLimitExceeded"
    );
    // Another user has its own quota.
    let other = api
        .http
        .get(api.url(""))
        .bearer_auth("user-2-token")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    let anonymous = api.http.get(api.url("")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    let api = Api::start(Config {
        quota_per_minute: 1,
        quota_with_429: true,
        ..Default::default()
    })
    .await;
    api.list("").await;
    assert_eq!(api.list("").await.0, 429);

    let api = Api::start(Config::default()).await;
    let r = api
        .http
        .post(format!("{}/emulator/faults", api.emu.url))
        .json(&json!({"status": 503, "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(api.list("").await.0, 503);
    assert_eq!(api.list("").await.0, 503);
    assert_eq!(api.list("").await.0, 200);
    assert_eq!(api.emu.requests(), 3);
    let list: Value = api
        .http
        .get(format!("{}/calendar/v3/users/me/calendarList", api.emu.url))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], CAL);
}

#[test]
fn accepted_list_parameters_are_documented() {
    let Some(d) = discovery() else { return };
    let documented: BTreeSet<String> = d["resources"]["events"]["methods"]["list"]["parameters"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for p in [
        "maxResults",
        "pageToken",
        "syncToken",
        "showDeleted",
        "singleEvents",
        "timeMin",
        "timeMax",
        "updatedMin",
        "iCalUID",
        "orderBy",
        "q",
        "privateExtendedProperty",
        "sharedExtendedProperty",
    ] {
        assert!(documented.contains(p), "{p}");
    }
}
