//! The Google Calendar v3 emulator's recurring events against the documented behaviour:
//! `singleEvents=true` and `events.instances` expand a series into its instances.

use calsync_e2e::emulators::google::Config;
use serde_json::{json, Value};

use super::google_emulator::{assert_conforms, discovery, Api};

#[tokio::test]
async fn single_events_and_instances_expand_recurring_events() {
    use reqwest::Method;
    let api = Api::start(Config::default()).await;
    let d = discovery();
    let master = json!({"id": "series0001", "summary": "Weekly",
        "start": {"dateTime": "2027-01-04T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2027-01-04T11:00:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"]});
    let (status, _) = api
        .call(Method::POST, "?sendUpdates=none", Some(master), &[])
        .await;
    assert_eq!(status, 200);
    let ids = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let single = api.list_all("?singleEvents=true").await;
    assert_eq!(
        ids(&single),
        [
            "series0001_20270104T090000Z",
            "series0001_20270111T090000Z",
            "series0001_20270118T090000Z",
            "series0001_20270125T090000Z"
        ],
        "instances replace the master"
    );
    for i in &single {
        assert_eq!(i["recurringEventId"], "series0001");
        assert!(i.get("recurrence").is_none());
        if let Some(d) = &d {
            assert_conforms(d, "Event", i);
        }
    }
    assert_eq!(
        single[1]["originalStartTime"]["dateTime"],
        "2027-01-11T10:00:00+01:00"
    );

    // Move one instance, cancel another; a slot the rule does not generate is 404.
    let moved = json!({"summary": "Weekly (moved)",
        "start": {"dateTime": "2027-01-12T15:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2027-01-12T16:00:00+01:00", "timeZone": "Europe/Berlin"}});
    let (status, _) = api
        .call(
            Method::PUT,
            "/series0001_20270111T090000Z?sendUpdates=none",
            Some(moved.clone()),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/series0001_20270118T090000Z?sendUpdates=none",
            None,
            &[],
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call(
            Method::PUT,
            "/series0001_20270105T090000Z?sendUpdates=none",
            Some(moved),
            &[],
        )
        .await;
    assert_eq!(status, 404, "no such instance");
    let single = api.list_all("?singleEvents=true").await;
    assert_eq!(single.len(), 3, "the cancelled instance is hidden");
    assert!(single.iter().any(|i| i["summary"] == "Weekly (moved)"));
    let with_deleted = api.list_all("?singleEvents=true&showDeleted=true").await;
    assert_eq!(
        with_deleted
            .iter()
            .filter(|i| i["status"] == "cancelled")
            .count(),
        1
    );

    // events.instances: start order, paging, time window, showDeleted.
    let (status, page1) = api.list("/series0001/instances?maxResults=2").await;
    assert_eq!(status, 200, "{page1}");
    if let Some(d) = &d {
        assert_conforms(d, "Events", &page1);
    }
    assert!(page1.get("nextSyncToken").is_none());
    let token = page1["nextPageToken"].as_str().expect("second page");
    let (_, page2) = api
        .list(&format!(
            "/series0001/instances?maxResults=2&pageToken={token}"
        ))
        .await;
    let all: Vec<Value> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(
        ids(&all),
        [
            "series0001_20270104T090000Z",
            "series0001_20270111T090000Z",
            "series0001_20270125T090000Z"
        ]
    );
    assert!(page2.get("nextPageToken").is_none());
    let (_, window) = api
        .list("/series0001/instances?timeMin=2027-01-12T15:30:00%2B01:00&timeMax=2027-01-25T00:00:00Z")
        .await;
    assert_eq!(
        ids(window["items"].as_array().unwrap()),
        ["series0001_20270111T090000Z"],
        "timeMin bounds the end, timeMax the start"
    );
    let (_, deleted) = api.list("/series0001/instances?showDeleted=true").await;
    assert_eq!(deleted["items"].as_array().unwrap().len(), 4);
    assert_eq!(api.list("/nosuch0001/instances").await.0, 404);
    assert_eq!(
        api.list("/series0001/instances?syncToken=x").await.0,
        400,
        "instances has no sync token"
    );
}
