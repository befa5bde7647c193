//! `make run`'s main job as a test: the demo group (Radicale, Xandikos, an ICS feed, and a
//! Google and an Outlook calendar connected by OAuth) converges, and the renames on Google
//! and on Outlook reach the CalDAV members by push (`demo::run` fails otherwise). Needs the
//! local stack.

#[tokio::test]
async fn demo_converges_with_google_and_outlook_members() {
    // A fresh name per run: the demo's calendars are created, never reused.
    let name = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let converged = calsync_e2e::demo::run(None, Some(&name))
        .await
        .expect("demo runs");
    assert!(converged, "the demo's members did not converge");
}

/// `make run ICS=…` with a calendar whose events cannot be read reports them and fails
/// instead of saying "converged" over an empty calendar.
#[tokio::test]
async fn a_calendar_none_of_whose_events_can_be_read_fails_the_demo() {
    let name = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let path = std::env::temp_dir().join(format!("{name}.ics"));
    std::fs::write(
        &path,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:no-start-1\r\nSUMMARY:No DTSTART\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:no-start-2\r\nSUMMARY:Nor here\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .expect("temp file");
    let ok = calsync_e2e::demo::run(path.to_str(), Some(&name))
        .await
        .expect("demo runs");
    let _ = std::fs::remove_file(&path);
    assert!(!ok, "nothing was imported, so the demo must not succeed");
}
