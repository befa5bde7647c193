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
