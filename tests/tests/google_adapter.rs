//! The Google adapter against the emulator alone (no AWS stack): writes of recurring series
//! whose shape Google constrains. Bulk writes through the batch endpoint are in
//! `google_batch` tests below.

use calsync::provider::google::GoogleCalendar;
use calsync::provider::{Provider, ProviderError};
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
        SecretString::from("any-token"),
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
