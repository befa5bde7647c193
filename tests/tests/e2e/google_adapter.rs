//! The Google adapter against the emulator alone (no AWS stack): writes of recurring series
//! whose shape Google constrains, and bulk writes through the batch endpoint.

use calsync::provider::google::GoogleCalendar;
use calsync::provider::{Provider, ProviderError, Write};
use calsync_e2e::emulators::google::{Config, GoogleEmulator};
use secrecy::SecretString;

async fn adapter(cal: &str) -> (GoogleEmulator, GoogleCalendar) {
    let emu = GoogleEmulator::start("127.0.0.1:0", Config::default())
        .await
        .expect("emulator");
    emu.add_calendar(cal, cal, "Australia/Sydney");
    let g = GoogleCalendar::new(
        reqwest::Client::new(),
        &format!("{}/calendar/v3/calendars/{cal}", emu.url),
        std::sync::Arc::new(calsync::oauth::StaticToken(SecretString::from("any-token"))),
        &format!("acct-{cal}"),
    )
    .expect("adapter");
    (emu, g)
}

fn vcal(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{body}END:VCALENDAR\r\n")
}

#[tokio::test]
async fn all_day_series_with_date_time_recurrence_ids_keep_their_exceptions() {
    // The shape of ical4j's google_aus_holidays.ics (Google's own export of 2006).
    let (_emu, g) = adapter("aus").await;
    let ical = vcal(
        "BEGIN:VEVENT\r\nUID:boxing@t\r\nDTSTAMP:20060425T020651Z\r\nDTSTART;VALUE=DATE:20021226\r\n\
RRULE:FREQ=YEARLY;UNTIL=20041225;BYMONTH=12\r\nSUMMARY:Boxing Day\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:boxing@t\r\nDTSTAMP:20060425T020651Z\r\nRECURRENCE-ID:20031226T000000Z\r\n\
DTSTART;VALUE=DATE:20031226\r\nDTEND;VALUE=DATE:20031227\r\nSUMMARY:Boxing Day (observed)\r\nEND:VEVENT\r\n",
    );
    g.create("boxing@t", &ical).await.expect("created");
    let pulled = g.pull(None).await.expect("pull");
    assert_eq!(pulled.changed.len(), 1);
    let data = pulled.changed[0].data.as_deref().expect("data");
    assert!(data.contains("RECURRENCE-ID;VALUE=DATE:20031226"), "{data}");
    assert!(data.contains("SUMMARY:Boxing Day (observed)"), "{data}");
}

#[tokio::test]
async fn a_refused_exception_rolls_the_created_series_back() {
    // An override of 10:00 on a rule that only generates 09:00 instances: Google has no such
    // instance (404). The series must not stay in Google without it.
    let (_emu, g) = adapter("orphan").await;
    let ical = vcal(
        "BEGIN:VEVENT\r\nUID:orphan@t\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20270104T090000Z\r\n\
DTEND:20270104T100000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:orphan@t\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20270105T100000Z\r\n\
DTSTART:20270105T110000Z\r\nDTEND:20270105T120000Z\r\nSUMMARY:Standup (moved)\r\nEND:VEVENT\r\n",
    );
    let err = g.create("orphan@t", &ical).await.expect_err("refused");
    assert!(
        matches!(err, ProviderError::Rejected { status: 404, .. }),
        "{err:?}"
    );
    let pulled = g.pull(None).await.expect("pull");
    assert!(
        pulled.changed.is_empty(),
        "a partial series stayed in Google: {:?}",
        pulled.changed
    );
}

fn series_ical(uid: &str, i: usize) -> String {
    // Every third event is a weekly series with one moved instance.
    let day = 4 + (i % 20);
    if i.is_multiple_of(3) {
        vcal(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:202701{day:02}T090000Z\r\n\
DTEND:202701{day:02}T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Series {i}\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:202701{day:02}T090000Z\r\n\
DTSTART:202701{day:02}T140000Z\r\nDTEND:202701{day:02}T150000Z\r\nSUMMARY:Series {i} (moved)\r\nEND:VEVENT\r\n"
        ))
    } else {
        vcal(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:202701{day:02}T090000Z\r\n\
DTEND:202701{day:02}T100000Z\r\nSUMMARY:Event {i}\r\nEND:VEVENT\r\n"
        ))
    }
}

/// Create `n` events of [`series_ical`] (UIDs `<prefix>-<i>@t`) in one `write_all`; their
/// UIDs and what each write returned.
async fn create_series(
    g: &GoogleCalendar,
    prefix: &str,
    n: usize,
) -> (Vec<String>, Vec<calsync::provider::WriteResult>) {
    let uids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}@t")).collect();
    let icals: Vec<String> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| series_ical(u, i))
        .collect();
    let writes: Vec<Write<'_>> = uids
        .iter()
        .zip(&icals)
        .map(|(uid, ical)| Write::Create { uid, ical })
        .collect();
    let results = g.write_all(&writes).await;
    assert_eq!(results.len(), n);
    let written = results
        .into_iter()
        .map(|r| r.expect("written").expect("a location"))
        .collect();
    (uids, written)
}

async fn sends_all_none(emu: &GoogleEmulator) -> usize {
    let sends = emu.sends();
    assert!(
        sends
            .iter()
            .all(|s| s.send_updates.as_deref() == Some("none")),
        "{sends:?}"
    );
    sends.len()
}

#[tokio::test]
async fn bulk_writes_go_through_two_batch_requests() {
    let (emu, g) = adapter("bulk").await;
    let (uids, written) = create_series(&g, "bulk", 30).await;
    assert_eq!(
        g.requests(),
        2,
        "one batch for the 30 masters, one for the 10 exceptions"
    );
    assert_eq!(emu.requests(), 40, "each call of a batch counts (quota)");
    assert_eq!(sends_all_none(&emu).await, 40);
    let pulled = g.pull(None).await.expect("pull");
    assert_eq!(pulled.changed.len(), 30);
    let moved = pulled
        .changed
        .iter()
        .filter(|r| r.data.as_deref().unwrap_or("").contains("(moved)"))
        .count();
    assert_eq!(moved, 10, "every series kept its moved instance");

    // A mixed bulk: updates (one with a stale version), deletes, one unwritable event.
    let before = g.requests();
    let stale = calsync::provider::Etag::from("\"1\"");
    let gone = calsync::provider::RemoteId::from("cs0000000000000000000000000000000000000000");
    let renamed: Vec<String> = (0..3)
        .map(|i| series_ical(&uids[i], i).replace("SUMMARY:", "SUMMARY:Renamed "))
        .collect();
    let bad = vcal("BEGIN:VEVENT\r\nUID:bad@t\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:no start\r\nEND:VEVENT\r\n");
    let writes = vec![
        Write::Update {
            href: &written[0].href,
            ical: &renamed[0],
            etag: written[0].etag.as_ref(),
        },
        Write::Update {
            href: &written[1].href,
            ical: &renamed[1],
            etag: Some(&stale),
        },
        Write::Update {
            href: &written[2].href,
            ical: &renamed[2],
            etag: written[2].etag.as_ref(),
        },
        Write::Delete {
            href: &written[4].href,
            etag: written[4].etag.as_ref(),
        },
        Write::Delete {
            href: &gone,
            etag: None,
        },
        Write::Create {
            uid: "bad@t",
            ical: &bad,
        },
    ];
    let r = g.write_all(&writes).await;
    assert!(r[0].as_ref().is_ok_and(|w| w.is_some()), "{:?}", r[0]);
    assert_eq!(
        r[1],
        Err(ProviderError::PreconditionFailed(
            written[1].href.to_string()
        ))
    );
    assert!(r[2].is_ok(), "{:?}", r[2]);
    assert_eq!(r[3], Ok(None));
    assert_eq!(r[4], Ok(None), "already gone is success");
    assert!(
        matches!(r[5], Err(ProviderError::Rejected { status: 400, .. })),
        "{:?}",
        r[5]
    );
    assert_eq!(
        g.requests() - before,
        3,
        "the exceptions Google holds for series 0 (the one recurring update), the masters \
batch, then series 0's exceptions"
    );
}

#[tokio::test]
async fn calls_busy_inside_a_batch_are_retried_alone() {
    let (emu, g) = adapter("storm").await;
    let g = g.with_retry(calsync::provider::google::RetryPolicy {
        min_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(20),
        max_retries: 5,
    });
    // The next three calls (inside the first batch) answer 429 / 403 rate limit / 503.
    for status in [429, 403, 503] {
        emu.fail_next(status, 1);
    }
    let uids: Vec<String> = (0..8).map(|i| format!("storm-{i}@t")).collect();
    let icals: Vec<String> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| series_ical(u, i + 1))
        .collect();
    let writes: Vec<Write<'_>> = uids
        .iter()
        .zip(&icals)
        .map(|(uid, ical)| Write::Create { uid, ical })
        .collect();
    for r in g.write_all(&writes).await {
        r.expect("written despite the storm");
    }
    assert_eq!(
        g.requests(),
        3,
        "masters batch, one batch of the three busy calls again, exceptions batch"
    );
    assert_eq!(g.pull(None).await.expect("pull").changed.len(), 8);
    assert_eq!(
        sends_all_none(&emu).await,
        8 + 2,
        "8 masters and 2 exceptions, each written once"
    );
}

#[tokio::test]
async fn the_batch_endpoint_refuses_more_than_1000_calls_and_other_apis() {
    let emu = GoogleEmulator::start("127.0.0.1:0", Config::default())
        .await
        .expect("emulator");
    let part =
        |path: &str| format!("--B\r\nContent-Type: application/http\r\n\r\nGET {path}\r\n\r\n");
    let post = |body: String| {
        reqwest::Client::new()
            .post(format!("{}/batch/calendar/v3", emu.url))
            .bearer_auth("t")
            .header("Content-Type", "multipart/mixed; boundary=B")
            .body(body)
            .send()
    };
    let many: String = (0..1001)
        .map(|_| part("/calendar/v3/users/me/calendarList"))
        .collect::<String>()
        + "--B--\r\n";
    assert_eq!(post(many).await.expect("post").status(), 400);
    let other = part("/drive/v3/files") + "--B--\r\n";
    assert_eq!(post(other).await.expect("post").status(), 400);
    let ok = part("/calendar/v3/users/me/calendarList") + "--B--\r\n";
    let resp = post(ok).await.expect("post");
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("multipart/mixed; boundary=")));
    assert!(resp.text().await.expect("body").contains("HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn slow_answers_past_the_client_timeout_are_retried() {
    let emu = GoogleEmulator::start("127.0.0.1:0", Config::default())
        .await
        .expect("emulator");
    emu.add_calendar("slow", "slow", "UTC");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .expect("client");
    let g = GoogleCalendar::new(
        client,
        &format!("{}/calendar/v3/calendars/slow", emu.url),
        std::sync::Arc::new(calsync::oauth::StaticToken(SecretString::from("any-token"))),
        "acct-slow",
    )
    .expect("adapter")
    .with_retry(calsync::provider::google::RetryPolicy {
        min_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(20),
        max_retries: 3,
    });
    // The next call answers after 2 s (past the 300 ms timeout), the one after in 100 ms.
    for ms in [2000, 100] {
        emu.slow_next(ms, 1);
    }
    let pulled = g.pull(None).await.expect("pull after a timeout");
    assert!(pulled.changed.is_empty());
    assert_eq!(g.requests(), 2, "the timed-out list was sent again once");
}

#[tokio::test]
async fn an_incremental_pull_recognises_its_own_series_writes_without_fetching_them() {
    let (emu, g) = adapter("echo").await;
    let start = g.pull(None).await.expect("initial pull");
    let (_, written) = create_series(&g, "echo", 9).await;

    // The listing of our own writes: the three series come without data, at the version
    // the write returned (what the mapping holds), and cost no call beyond the list.
    let before = emu.requests();
    let echo = g.pull(Some(&start.cursor)).await.expect("incremental pull");
    assert_eq!(emu.requests() - before, 1, "only the list");
    assert_eq!(echo.changed.len(), 9);
    for (i, w) in written.iter().enumerate() {
        let r = echo
            .changed
            .iter()
            .find(|r| r.href == w.href)
            .expect("listed");
        assert_eq!(r.etag, w.etag, "event {i}: the written version");
        assert_eq!(
            r.data.is_none(),
            i % 3 == 0,
            "event {i}: data only when complete"
        );
    }

    // Someone else moves an instance of series 0 and renames series 3's master: their
    // listed versions differ from the mapping's, and one batch fetches both series whole.
    let client = reqwest::Client::new();
    let events = format!("{}/calendar/v3/calendars/echo/events", emu.url);
    for (id, summary) in [
        (
            format!("{}_20270104T090000Z", written[0].href),
            "moved again",
        ),
        (written[3].href.to_string(), "renamed"),
    ] {
        let resp = client
            .patch(format!("{events}/{id}"))
            .bearer_auth("any-token")
            .json(&serde_json::json!({ "summary": summary }))
            .send()
            .await
            .expect("patch");
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    let changed = g.pull(Some(&echo.cursor)).await.expect("incremental pull");
    assert_eq!(changed.changed.len(), 2);
    for r in &changed.changed {
        let w = written.iter().find(|w| w.href == r.href).expect("ours");
        assert!(r.data.is_none());
        assert_ne!(r.etag, w.etag, "{}: a change is not an echo", r.href);
    }
    let hrefs: Vec<_> = changed.changed.iter().map(|r| r.href.clone()).collect();
    let before = g.requests();
    let fetched = g.fetch(&hrefs).await.expect("fetch");
    assert_eq!(
        g.requests() - before,
        1,
        "one batch request for both series"
    );
    assert_eq!(fetched.len(), 2);
    let data = |h: &calsync::provider::RemoteId| {
        let r = fetched.iter().find(|r| &r.href == h).expect("fetched");
        r.data.clone().expect("data")
    };
    assert!(data(&written[0].href).contains("SUMMARY:moved again"));
    assert!(data(&written[0].href).contains("SUMMARY:Series 0"));
    assert!(data(&written[3].href).contains("SUMMARY:renamed"));
    assert!(data(&written[3].href).contains("SUMMARY:Series 3 (moved)"));
}
