//! The Graph emulator against the CSDL and the docs (`../shared/corpus/graph/`), and the docs
//! examples through the adapter's mapping. No AWS needed.

use std::collections::{BTreeMap, BTreeSet};

use calsync_e2e::emulators::graph::{Config, GraphEmulator};
use serde_json::{json, Value};

const CSDL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/graph/csdl/graph-v1.0-calendar-subset.csdl.xml"
);
const EXAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/graph/docs-examples"
);

/// Property and navigation property names of every entity and complex type, base types
/// included.
fn csdl_types() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(CSDL).expect("CSDL in the corpus");
    let doc = roxmltree::Document::parse(&text).expect("CSDL parses");
    let mut own: BTreeMap<String, (Option<String>, BTreeSet<String>)> = BTreeMap::new();
    for t in doc
        .descendants()
        .filter(|n| n.has_tag_name("EntityType") || n.has_tag_name("ComplexType"))
    {
        let name = t.attribute("Name").unwrap_or("").to_string();
        let base = t
            .attribute("BaseType")
            .map(|b| b.trim_start_matches("graph.").to_string());
        let props = t
            .children()
            .filter(|c| c.has_tag_name("Property") || c.has_tag_name("NavigationProperty"))
            .filter_map(|c| c.attribute("Name").map(str::to_string))
            .collect();
        own.insert(name, (base, props));
    }
    own.keys()
        .map(|k| {
            let mut all = BTreeSet::new();
            let mut cur = Some(k.clone());
            while let Some(c) = cur {
                let (base, props) = own.get(&c).cloned().unwrap_or_default();
                all.extend(props);
                cur = base;
            }
            (k.clone(), all)
        })
        .collect()
}

/// Keys of `v` (annotations left out) that the CSDL type `ty` does not have, and likewise
/// for the complex values sync relies on.
fn unknown(
    types: &BTreeMap<String, BTreeSet<String>>,
    ty: &str,
    v: &Value,
    path: &str,
) -> Vec<String> {
    let Some(obj) = v.as_object() else {
        return Vec::new();
    };
    let allowed = types.get(ty).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (k, val) in obj {
        if k.starts_with('@') {
            continue;
        }
        if !allowed.contains(k) {
            out.push(format!("{path}{ty}.{k}"));
        }
        let nested = match k.as_str() {
            "start" | "end" => Some("dateTimeTimeZone"),
            "body" => Some("itemBody"),
            "location" => Some("location"),
            "recurrence" => Some("patternedRecurrence"),
            "pattern" => Some("recurrencePattern"),
            "range" => Some("recurrenceRange"),
            "organizer" => Some("recipient"),
            _ => None,
        };
        if let Some(n) = nested {
            out.extend(unknown(types, n, val, &format!("{path}{k}/")));
        }
    }
    out
}

async fn emulator(config: Config) -> (GraphEmulator, reqwest::Client, String) {
    let emu = GraphEmulator::start("127.0.0.1:0", config)
        .await
        .expect("emulator");
    emu.add_calendar("work", "Work");
    (emu, reqwest::Client::new(), "Bearer any".to_string())
}

/// One request, built now (so the future borrows nothing); status, headers and JSON body.
fn call(
    http: &reqwest::Client,
    auth: &str,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> impl std::future::Future<Output = (u16, reqwest::header::HeaderMap, Value)> {
    let mut r = http.request(method, url).header("authorization", auth);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    async move {
        let resp = r.send().await.expect("send");
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            h,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }
}

fn series_body() -> Value {
    json!({"subject": "Weekly", "start": {"dateTime": "2027-01-04T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2027-01-04T09:30:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                       "range": {"type": "numbered", "startDate": "2027-01-04", "numberOfOccurrences": 6}}})
}

#[tokio::test]
async fn responses_and_the_adapters_requests_use_only_csdl_properties() {
    let types = csdl_types();
    assert!(
        types["event"].contains("seriesMasterId") && types["event"].contains("changeKey"),
        "base types followed"
    );
    let (emu, http, auth) = emulator(Config::default()).await;
    let api = emu.api_root();
    let post = |b: Value| {
        call(
            &http,
            &auth,
            reqwest::Method::POST,
            &format!("{api}/me/calendars/work/events"),
            Some(b),
            &[],
        )
    };
    let (s, _, single) = post(json!({"subject": "One", "start": {"dateTime": "2027-01-05T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2027-01-05T11:00:00", "timeZone": "UTC"}})).await;
    assert_eq!(s, 201, "{single}");
    let (s, _, master) = post(series_body()).await;
    assert_eq!(s, 201, "{master}");
    let (_, _, inst) = call(&http, &auth, reqwest::Method::GET, &format!("{api}/me/events/{}/instances?startDateTime=2027-01-01T00:00:00Z&endDateTime=2027-03-01T00:00:00Z", master["id"].as_str().unwrap()), None, &[]).await;
    let occ = inst["value"][1]["id"].as_str().unwrap().to_string();
    let (s, _, exc) = call(
        &http,
        &auth,
        reqwest::Method::PATCH,
        &format!("{api}/me/events/{occ}"),
        Some(json!({"subject": "Moved"})),
        &[],
    )
    .await;
    assert_eq!((s, exc["type"].as_str()), (200, Some("exception")));
    let (_, _, delta) = call(&http, &auth, reqwest::Method::GET, &format!("{api}/me/calendars/work/calendarView/delta?startDateTime=2027-01-01T00:00:00Z&endDateTime=2027-12-31T00:00:00Z"), None, &[("prefer", "odata.maxpagesize=100")]).await;
    let mut seen = vec![single, master, exc];
    seen.extend(inst["value"].as_array().cloned().unwrap_or_default());
    seen.extend(delta["value"].as_array().cloned().unwrap_or_default());
    let bad: Vec<String> = seen
        .iter()
        .flat_map(|e| unknown(&types, "event", e, ""))
        .collect();
    assert!(
        bad.is_empty(),
        "emulator answers properties the CSDL does not define: {bad:?}"
    );
    // Occurrences in delta carry only what the docs say.
    let occ_keys: BTreeSet<String> = delta["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "occurrence")
        .flat_map(|v| {
            v.as_object()
                .unwrap()
                .keys()
                .filter(|k| !k.starts_with('@'))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        occ_keys,
        ["end", "id", "seriesMasterId", "start", "type"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // What the adapter writes is made of CSDL properties too.
    for ics in [calsync_e2e::demo::SAMPLE] {
        for s in calsync::ical::parse_calendar("sample", ics)
            .expect("parses")
            .series
        {
            let g = calsync::provider::outlook::mapping::to_graph(&s, &Default::default())
                .expect("writable");
            let mut bodies = vec![g.master.clone()];
            bodies.extend(g.exceptions.iter().map(|(_, b)| b.clone()));
            for b in bodies {
                let bad = unknown(&types, "event", &b, "");
                assert!(bad.is_empty(), "{}: the adapter writes {bad:?}", s.uid);
            }
        }
    }
}

#[tokio::test]
async fn docs_examples_map_through_the_adapter() {
    let mut mapped = 0;
    for entry in std::fs::read_dir(EXAMPLES).expect("examples") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.contains(".request.") {
            continue; // request bodies carry no id
        }
        if !(name.starts_with("event-")
            || name.starts_with("concepts-delta-query-events")
            || name.starts_with("resource-event")
            || name.starts_with("contrib-user-post-events")
            || name.starts_with("calendar-list-calendarview"))
        {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let body = &v["body"];
        let items: Vec<Value> = match body["value"].as_array() {
            Some(a) => a.clone(),
            None => vec![body.clone()],
        };
        for ev in items
            .iter()
            .filter(|e| e["start"]["dateTime"].is_string() && e["end"]["dateTime"].is_string())
        {
            let ical = calsync::provider::outlook::mapping::to_ical(ev, &[], &[])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let s = calsync::ical::EventSeries::parse_single(&name, &ical)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{ical}"));
            if let Some(subject) = ev["subject"].as_str().filter(|s| !s.trim().is_empty()) {
                assert_eq!(s.summary(), subject, "{name}");
            }
            mapped += 1;
        }
    }
    assert!(mapped >= 8, "only {mapped} docs events mapped");
}

#[tokio::test]
async fn the_emulator_holds_to_the_documented_rules() {
    let (emu, http, auth) = emulator(Config::default()).await;
    let api = emu.api_root();
    let get = |u: String| call(&http, &auth, reqwest::Method::GET, &u, None, &[]);
    // Delta needs a window of at most 1825 days, on calendarView only.
    let (s, _, b) = get(format!("{api}/me/calendars/work/calendarView/delta")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("ErrorInvalidParameter"))
    );
    let (s, _, _) = get(format!("{api}/me/calendars/work/calendarView/delta?startDateTime=2020-01-01T00:00:00Z&endDateTime=2026-01-02T00:00:00Z")).await;
    assert_eq!(s, 400);
    let (s, _, b) = get(format!("{api}/me/calendars/work/events/delta")).await;
    assert!(
        s == 400
            && b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Change tracking is not supported")
    );
    // A garbage token: 410 SyncStateNotFound with a restart Location.
    let (s, h, b) = get(format!(
        "{api}/me/calendars/work/calendarView/delta?$deltatoken=garbage"
    ))
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (410, Some("SyncStateNotFound"))
    );
    assert!(h["location"].to_str().unwrap().ends_with("$deltatoken="));
    // Creates: transactionId answers the first event; all-day events run midnight to midnight.
    let url = format!("{api}/me/calendars/work/events");
    let mut body = series_body();
    body["transactionId"] = json!("tx-1");
    let (s1, _, a) = call(
        &http,
        &auth,
        reqwest::Method::POST,
        &url,
        Some(body.clone()),
        &[],
    )
    .await;
    let (s2, _, b) = call(&http, &auth, reqwest::Method::POST, &url, Some(body), &[]).await;
    assert_eq!((s1, s2, a["id"].clone()), (201, 201, b["id"].clone()));
    let (s, _, _) = call(&http, &auth, reqwest::Method::POST, &url, Some(json!({"isAllDay": true, "start": {"dateTime": "2027-01-05T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2027-01-06T00:00:00", "timeZone": "UTC"}})), &[]).await;
    assert_eq!(s, 400, "an all-day event that does not start at midnight");
    let (s, _, _) = call(&http, &auth, reqwest::Method::POST, &url, Some(json!({"start": {"dateTime": "2027-01-05T10:00:00", "timeZone": "Mars Standard Time"}, "end": {"dateTime": "2027-01-05T11:00:00", "timeZone": "UTC"}})), &[]).await;
    assert_eq!(s, 400, "an unknown zone");
    // If-Match with a stale changeKey: 412 ErrorIrresolvableConflict.
    let ev = format!("{api}/me/events/{}", a["id"].as_str().unwrap());
    let stale = a["@odata.etag"].as_str().unwrap().to_string();
    let (s, _, _) = call(
        &http,
        &auth,
        reqwest::Method::PATCH,
        &ev,
        Some(json!({"subject": "x"})),
        &[("if-match", &stale)],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, b) = call(
        &http,
        &auth,
        reqwest::Method::PATCH,
        &ev,
        Some(json!({"subject": "y"})),
        &[("if-match", &stale)],
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (412, Some("ErrorIrresolvableConflict"))
    );
    // Times come back in the asked zone; all-day dates are never shifted.
    let (_, _, pst) = call(
        &http,
        &auth,
        reqwest::Method::GET,
        &ev,
        None,
        &[("prefer", "outlook.timezone=\"Pacific Standard Time\"")],
    )
    .await;
    assert_eq!(
        pst["start"],
        json!({"dateTime": "2027-01-04T00:00:00.0000000", "timeZone": "Pacific Standard Time"})
    );
    // $batch: at most 20, dependsOn → 424 after a failure, answers in any order by id.
    let reqs: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me/calendars"}))
        .collect();
    let (s, _, _) = call(
        &http,
        &auth,
        reqwest::Method::POST,
        &format!("{api}/$batch"),
        Some(json!({"requests": reqs})),
        &[],
    )
    .await;
    assert_eq!(s, 400);
    let (s, _, b) = call(
        &http,
        &auth,
        reqwest::Method::POST,
        &format!("{api}/$batch"),
        Some(json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me/events/nope"},
        {"id": "2", "method": "GET", "url": "/me/calendars", "dependsOn": ["1"]}]})),
        &[],
    )
    .await;
    let by_id: BTreeMap<String, u64> = b["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!((s, by_id["1"], by_id["2"]), (200, 404, 424));
    // A subscription whose notification URL does not answer the handshake is not created.
    let (s, _, b) = call(&http, &auth, reqwest::Method::POST, &format!("{api}/subscriptions"), Some(json!({"changeType": "updated", "notificationUrl": "http://127.0.0.1:9/hook",
        "resource": "/me/calendars/work/events", "expirationDateTime": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(), "clientState": "s"})), &[]).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("ValidationError"))
    );
    let (s, _, _) = call(&http, &auth, reqwest::Method::POST, &format!("{api}/subscriptions"), Some(json!({"changeType": "updated", "notificationUrl": "http://127.0.0.1:9/hook",
        "resource": "/me/calendars/work/events", "expirationDateTime": (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339(), "clientState": "s"})), &[]).await;
    assert_eq!(s, 400, "longer than the maximum lifetime");
}

#[tokio::test]
async fn more_than_the_mailbox_limit_in_flight_is_throttled() {
    let (emu, http, auth) = emulator(Config {
        max_concurrency: 1,
        latency: std::time::Duration::from_millis(200),
        retry_after_secs: 3,
        ..Config::default()
    })
    .await;
    let url = format!("{}/me/calendars", emu.api_root());
    let (a, b) = tokio::join!(
        call(&http, &auth, reqwest::Method::GET, &url, None, &[]),
        call(&http, &auth, reqwest::Method::GET, &url, None, &[])
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 429]);
    let throttled = if a.0 == 429 { a } else { b };
    assert_eq!(
        throttled.2["error"]["code"].as_str(),
        Some("MailboxConcurrency")
    );
    assert_eq!(throttled.1["retry-after"].to_str().unwrap(), "3");
    assert_eq!(
        emu.stats().max_inflight,
        2,
        "the emulator counts what arrives"
    );
}

#[tokio::test]
async fn the_identity_platform_rotates_refresh_tokens_and_names_aadsts_codes() {
    let (emu, http, _) = emulator(Config::default()).await;
    let redirect = "http://127.0.0.1:1/cb";
    http.post(format!("{}/emulator/oauth/clients", emu.url))
        .json(&json!({"client_id": "c", "client_secret": "s", "redirect_uris": [redirect]}))
        .send()
        .await
        .unwrap();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = |scope: &'static str| {
        let http = no_redirects.clone();
        let url = format!("{}/common/oauth2/v2.0/authorize", emu.url);
        async move {
            let r = http
                .get(url)
                .query(&[
                    ("client_id", "c"),
                    ("response_type", "code"),
                    ("redirect_uri", redirect),
                    ("scope", scope),
                    ("state", "st"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 302);
            let loc = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
            loc.query_pairs()
                .find(|(k, _)| k == "code")
                .unwrap()
                .1
                .to_string()
        }
    };
    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{}/common/oauth2/v2.0/token", emu.url);
        async move {
            let r = http.post(url).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let code = consent("offline_access Calendars.ReadWrite").await;
    let grant = |code: &str| {
        vec![
            ("client_id", "c".to_string()),
            ("client_secret", "s".into()),
            ("grant_type", "authorization_code".into()),
            ("code", code.into()),
            ("redirect_uri", redirect.into()),
        ]
    };
    let (s, first) = token(grant(&code)).await;
    assert_eq!(s, 200);
    for k in [
        "token_type",
        "scope",
        "expires_in",
        "ext_expires_in",
        "access_token",
        "refresh_token",
    ] {
        assert!(first.get(k).is_some(), "{k} in {first}");
    }
    let (s, again) = token(grant(&code)).await;
    assert_eq!(
        (s, again["error"].as_str(), again["error_codes"][0].as_u64()),
        (400, Some("invalid_grant"), Some(54005))
    );
    let refresh = |rt: &str| {
        vec![
            ("client_id", "c".to_string()),
            ("client_secret", "s".into()),
            ("grant_type", "refresh_token".into()),
            ("refresh_token", rt.into()),
        ]
    };
    let (_, second) = token(refresh(first["refresh_token"].as_str().unwrap())).await;
    assert_ne!(
        second["refresh_token"], first["refresh_token"],
        "rotated on use"
    );
    http.post(format!("{}/emulator/oauth/grant-error", emu.url))
        .json(&json!({"code": 70008}))
        .send()
        .await
        .unwrap();
    let (s, e) = token(refresh(second["refresh_token"].as_str().unwrap())).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS70008:"));
    // Without offline_access there is no refresh token.
    let code = consent("Calendars.ReadWrite").await;
    let (_, t) = token(grant(&code)).await;
    assert!(t.get("refresh_token").is_none(), "{t}");
}

#[tokio::test]
async fn the_request_budget_and_injected_faults_are_retried_by_the_adapter() {
    use calsync::provider::Provider;
    let (emu, http, auth) = emulator(Config {
        budget_per_10min: 2,
        retry_after_secs: 1,
        ..Config::default()
    })
    .await;
    let url = format!("{}/me/calendars", emu.api_root());
    for _ in 0..2 {
        assert_eq!(
            call(&http, &auth, reqwest::Method::GET, &url, None, &[])
                .await
                .0,
            200
        );
    }
    let (s, h, b) = call(&http, &auth, reqwest::Method::GET, &url, None, &[]).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("ApplicationThrottled"))
    );
    assert_eq!(h["retry-after"].to_str().unwrap(), "1");

    // The adapter waits out a 503 with Retry-After and a 429, then reads the calendar.
    let (emu, _, _) = emulator(Config::default()).await;
    emu.fail_next(503, 1);
    emu.fail_next(429, 1);
    let o = calsync::provider::outlook::OutlookCalendar::new(
        reqwest::Client::new(),
        &format!("{}/me/calendars/work", emu.api_root()),
        std::sync::Arc::new(calsync::oauth::StaticToken(secrecy::SecretString::from(
            "t",
        ))),
        "fault-account",
    )
    .expect("url");
    let pulled = o.pull(None).await.expect("pull after the faults");
    assert!(pulled.full && pulled.changed.is_empty());
    assert_eq!(o.requests(), 3, "two refused, one served");
}
