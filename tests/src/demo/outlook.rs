//! The demo's Outlook member: connected through the API's Microsoft consent URL, renamed on
//! the Outlook side (a change notification brings it to the others), and its part of the
//! report.

use std::collections::BTreeSet;

use calsync::config::Ctx;
use calsync::ical::EventSeries;
use calsync::model::Link;
use calsync::provider::Provider;

use crate::api::ApiClient;
use crate::outlook::LocalOutlook;

/// What the series is called after the rename on Outlook.
pub const RENAMED_ON_OUTLOOK: &str = "Demo series (renamed on Outlook)";

/// Connect the emulator calendar `<tag>-outlook` through `POST …/links/oauth/outlook` and
/// the consent round trip.
///
/// Errors: the API refused, or the consent failed.
pub async fn connect(
    api: &ApiClient,
    group: &str,
    lo: &LocalOutlook,
    tag: &str,
) -> anyhow::Result<Link> {
    let cal = format!("{tag}-outlook");
    let consent = api
        .post(
            &format!("/v1/groups/{group}/links/oauth/outlook"),
            &serde_json::json!({"calendar_id": cal, "display_name": "outlook"}),
        )
        .await?;
    anyhow::ensure!(
        consent.status == 200,
        "Outlook consent URL: {} {}",
        consent.status,
        consent.body
    );
    let url = consent.body["consent_url"].as_str().unwrap_or_default();
    let o = lo.finish_consent(&cal, "outlook", url).await?;
    println!(
        "connected Outlook calendar {cal} (Graph emulator at {}) through the Microsoft consent URL the API answered: rotating refresh tokens in Secrets Manager ({}), subscription delivering to {}/webhooks/outlook",
        lo.emu.url,
        o.secret_arn.as_deref().unwrap_or("?"),
        lo.ctx.config.webhook_base.as_deref().unwrap_or("?")
    );
    Ok(o)
}

/// A person renames the series `uid` in Outlook: Graph notifies the webhook, which queues a
/// pull; the queues are drained (no schedule).
///
/// Errors: the series is not in Outlook, no notification within 30 s, the drain failed.
pub async fn rename(ctx: &Ctx, lo: &LocalOutlook, o: &Link, uid: &str) -> anyhow::Result<()> {
    let user = lo.user(o).await?;
    let master = user
        .events()
        .await?
        .into_iter()
        .find(|e| {
            calsync::provider::outlook::mapping::uid_of(e) == uid
                || e["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Demo series"))
        })
        .ok_or_else(|| anyhow::anyhow!("{uid} not in Outlook"))?;
    let seen = lo.emu.deliveries().len();
    user.patch(
        master["id"].as_str().unwrap_or_default(),
        serde_json::json!({"subject": RENAMED_ON_OUTLOOK}),
    )
    .await?;
    let d = lo
        .emu
        .wait_for_delivery(
            seen,
            |d| d.kind == "updated",
            std::time::Duration::from_secs(30),
        )
        .await
        .ok_or_else(|| anyhow::anyhow!("Outlook sent no change notification within 30 s"))?;
    anyhow::ensure!(
        d.status == Some(202),
        "the webhook receiver answered {:?} to the change notification",
        d.status
    );
    let stats = crate::runner::drain(ctx).await?;
    println!(
        "renaming the series on Outlook: change notification → webhook 202 → sync job; no schedule: {} pulls, {} pushes",
        stats.pulls, stats.pushes
    );
    Ok(())
}

/// Outlook's part of the report.
pub struct Report {
    /// The series Outlook holds (refused ones left out).
    pub series: Vec<EventSeries>,
    /// UIDs whose Outlook version is not the projection of the Radicale version.
    pub unlike: Vec<String>,
}

/// Read Outlook whole and compare every Radicale event's projection with it.
///
/// Errors: reading Outlook failed.
pub async fn report(
    lo: &LocalOutlook,
    o: &Link,
    radicale: &[EventSeries],
    refused: &BTreeSet<String>,
) -> anyhow::Result<Report> {
    let series: Vec<EventSeries> = lo
        .series(o)
        .await?
        .into_iter()
        .filter(|s| !refused.contains(&s.uid))
        .collect();
    let provider = lo.provider(o)?;
    let mut unlike = Vec::new();
    for s in radicale.iter().filter(|s| !refused.contains(&s.uid)) {
        let projected = provider
            .project(&s.to_ical())
            .and_then(|p| EventSeries::parse_single("projection", &p).ok());
        match (projected, series.iter().find(|x| x.uid == s.uid)) {
            (Some(p), Some(h)) if h.same_content(&p) => {}
            _ => unlike.push(s.uid.clone()),
        }
    }
    let st = lo.emu.stats();
    let deliveries = lo.emu.deliveries();
    println!(
        "Outlook emulator: {} API requests served ({} of them $batch envelopes, at most {} in flight), {} change notifications delivered ({} answered 202); no write carried attendees: {}",
        st.requests,
        st.batches,
        st.max_inflight,
        deliveries.len(),
        deliveries.iter().filter(|d| d.status == Some(202)).count(),
        lo.emu.writes().iter().all(|w| !w.attendees)
    );
    Ok(Report { series, unlike })
}
