//! Notifications to the application: EventBridge events on the stack's bus
//! (`<stack>-bus`), `source: calsync`, one detail-type per kind ([`Kind`]). `detail` carries
//! user, group, link, event id, a readable reason and, where the user must act, the API call
//! to make; never a secret. A run started by AutoSync with `silentNotification: 1` emits
//! none. Sending failures are logged: a notification never fails a sync.
//!
//! The decision of what to send is [`decide`], a pure function of the link before and after
//! a run; [`send`] does the I/O (PutEvents, 10 entries a call).

use serde_json::{json, Value};

use crate::config::Ctx;
use crate::model::{Link, LinkStatus, NoticeKind, RunRecord};

/// Event source of every calsync notification.
pub const SOURCE: &str = "calsync";
/// Failed runs in a row that make a link "failing".
pub const FAILING_AFTER: i64 = 3;

/// The kinds of notification (EventBridge `detail-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An event is in conflict on a link with policy `manual`.
    EventConflict,
    /// A link's credentials were refused: the user must connect it again.
    LinkReconnectNeeded,
    /// A pull would have deleted too much; the deletions wait for a release.
    LinkQuarantined,
    /// [`FAILING_AFTER`] runs of a link failed in a row.
    SyncFailing,
    /// An event could not be written to, or read from, a member.
    EventSyncError,
    /// A link was disconnected after its copies were removed from its calendar
    /// ([`crate::disconnect::remove_copies`]).
    LinkDisconnected,
}

impl Kind {
    /// The `detail-type`.
    pub fn detail_type(self) -> &'static str {
        match self {
            Kind::EventConflict => "Event Conflict",
            Kind::LinkReconnectNeeded => "Link Reconnect Needed",
            Kind::LinkQuarantined => "Link Quarantined",
            Kind::SyncFailing => "Sync Failing",
            Kind::EventSyncError => "Event Sync Error",
            Kind::LinkDisconnected => "Link Disconnected",
        }
    }
}

/// One notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Its kind.
    pub kind: Kind,
    /// The event's `detail`.
    pub detail: Value,
}

fn base(link: &Link, reason: &str) -> Value {
    json!({
        "user_id": link.user_id,
        "group_id": link.group_id,
        "link_id": link.link_id,
        "link_name": link.display_name,
        "reason": reason,
    })
}

/// What the user calls to connect `link` again.
fn reconnect_call(link: &Link) -> Value {
    match link.provider.module().oauth() {
        Some(p) => {
            json!({"method": "POST", "path": format!("/v1/groups/{}/links/oauth/{}", link.group_id, p.slug())})
        }
        None => json!({"method": "POST", "path": format!("/v1/groups/{}/links", link.group_id)}),
    }
}

/// The notifications a finished run causes: `before` is the link as the run found it,
/// `status` / `reason` / `failures` its state afterwards. Transitions only: a link already
/// quarantined or waiting for reconnection is not notified again, a failing link once when
/// it reaches [`FAILING_AFTER`].
pub fn decide(
    before: &Link,
    status: LinkStatus,
    reason: Option<&str>,
    failures: i64,
    run: &RunRecord,
) -> Vec<Notification> {
    let reason = reason.unwrap_or("");
    let mut out = Vec::new();
    if status == LinkStatus::ReconnectNeeded && before.status != LinkStatus::ReconnectNeeded {
        let mut d = base(before, reason);
        d["reconnect"] = reconnect_call(before);
        out.push(Notification {
            kind: Kind::LinkReconnectNeeded,
            detail: d,
        });
    }
    if status == LinkStatus::Quarantined && before.status != LinkStatus::Quarantined {
        let mut d = base(before, reason);
        d["release"] = json!({"method": "POST", "path": format!("/v1/links/{}/release-deletions", before.link_id)});
        out.push(Notification {
            kind: Kind::LinkQuarantined,
            detail: d,
        });
    }
    if failures == FAILING_AFTER {
        let mut d = base(before, reason);
        d["consecutive_failures"] = json!(failures);
        out.push(Notification {
            kind: Kind::SyncFailing,
            detail: d,
        });
    }
    for n in &run.notices {
        let mut d = base(before, &n.reason);
        d["event_id"] = json!(n.event_id);
        let kind = match n.kind {
            NoticeKind::Conflict => {
                d["resolve"] = json!({"method": "POST", "path": format!("/v1/groups/{}/conflicts/{}:resolve", before.group_id, n.event_id)});
                Kind::EventConflict
            }
            NoticeKind::Error => Kind::EventSyncError,
            // Part of the removal's own notification ([`removed`]).
            NoticeKind::Kept => continue,
        };
        out.push(Notification { kind, detail: d });
    }
    out
}

/// The notification of a link disconnected once its copies were removed by `run`:
/// `copies_removed` (count), `copies_kept` (the event ids of copies edited on the calendar,
/// which stayed) and `not_removed` (event ids the provider refused to delete).
pub fn removed(link: &Link, run: &RunRecord) -> Notification {
    let ids = |kind: NoticeKind| -> Vec<&str> {
        run.notices
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| n.event_id.as_str())
            .collect()
    };
    let mut d = base(
        link,
        "disconnected after its copies were removed from its calendar",
    );
    d["copies_removed"] = json!(run.deleted);
    d["copies_kept"] = json!(ids(NoticeKind::Kept));
    d["not_removed"] = json!(ids(NoticeKind::Error));
    Notification {
        kind: Kind::LinkDisconnected,
        detail: d,
    }
}

/// Put `notes` on the stack's bus (PutEvents, 10 a call). Failures are logged.
pub async fn send(ctx: &Ctx, notes: &[Notification]) {
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    for chunk in notes.chunks(10) {
        let entries: Vec<PutEventsRequestEntry> = chunk
            .iter()
            .map(|n| {
                PutEventsRequestEntry::builder()
                    .source(SOURCE)
                    .detail_type(n.kind.detail_type())
                    .detail(n.detail.to_string())
                    .event_bus_name(&ctx.config.event_bus)
                    .build()
            })
            .collect();
        match ctx
            .clients
            .events
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if out.failed_entry_count() > 0 => {
                tracing::warn!(
                    failed = out.failed_entry_count(),
                    "some notifications were not accepted"
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %aws_sdk_eventbridge::error::DisplayErrorContext(e), "notifications not sent")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventNotice, ProviderKind};

    fn link(status: LinkStatus) -> Link {
        let mut l = Link::new(
            "l1",
            "g1",
            7,
            ProviderKind::Google,
            "https://x/calendars/primary",
        );
        l.status = status;
        l
    }

    fn kinds(n: &[Notification]) -> Vec<Kind> {
        n.iter().map(|n| n.kind).collect()
    }

    #[test]
    fn transitions_are_notified_once() {
        use LinkStatus as S;
        let run = RunRecord::default();
        let cases = [
            (
                S::Ok,
                S::ReconnectNeeded,
                1,
                vec![Kind::LinkReconnectNeeded],
            ),
            (S::ReconnectNeeded, S::ReconnectNeeded, 1, vec![]),
            (S::Ok, S::Quarantined, 0, vec![Kind::LinkQuarantined]),
            (S::Quarantined, S::Quarantined, 0, vec![]),
            (S::Error, S::Error, 3, vec![Kind::SyncFailing]),
            (S::Error, S::Error, 4, vec![]),
            (S::Error, S::Error, 2, vec![]),
            (S::Error, S::Ok, 0, vec![]),
        ];
        for (before, after, failures, want) in cases {
            let got = decide(&link(before), after, Some("why"), failures, &run);
            assert_eq!(kinds(&got), want, "{before:?} -> {after:?} ({failures})");
        }
    }

    #[test]
    fn event_notices_carry_the_event_and_what_to_call() {
        let mut run = RunRecord::default();
        run.notices.push(EventNotice {
            kind: NoticeKind::Conflict,
            event_id: "e1".into(),
            reason: "changed on both sides: SUMMARY".into(),
        });
        run.notices.push(EventNotice {
            kind: NoticeKind::Error,
            event_id: "e2".into(),
            reason: "HTTP 403".into(),
        });
        let got = decide(
            &link(LinkStatus::ReconnectNeeded),
            LinkStatus::ReconnectNeeded,
            None,
            0,
            &run,
        );
        assert_eq!(kinds(&got), [Kind::EventConflict, Kind::EventSyncError]);
        assert_eq!(
            got[0].detail["resolve"]["path"],
            "/v1/groups/g1/conflicts/e1:resolve"
        );
        assert_eq!(got[1].detail["event_id"], "e2");
        assert_eq!(got[1].detail["user_id"], 7);
        let r = decide(
            &link(LinkStatus::Ok),
            LinkStatus::ReconnectNeeded,
            Some("invalid_grant"),
            1,
            &RunRecord::default(),
        );
        assert_eq!(
            r[0].detail["reconnect"]["path"],
            "/v1/groups/g1/links/oauth/google"
        );
    }

    #[test]
    fn a_removal_is_one_notification_with_what_stayed() {
        let mut run = RunRecord {
            deleted: 3,
            ..Default::default()
        };
        for (kind, id) in [(NoticeKind::Kept, "e1"), (NoticeKind::Error, "e2")] {
            run.notices.push(EventNotice {
                kind,
                event_id: id.into(),
                reason: "why".into(),
            });
        }
        // Not a conflict for the application to resolve: no Event Conflict for the kept one.
        let got = decide(
            &link(LinkStatus::Removing),
            LinkStatus::Removing,
            None,
            0,
            &run,
        );
        assert_eq!(kinds(&got), [Kind::EventSyncError]);
        let n = removed(&link(LinkStatus::Removing), &run);
        assert_eq!(n.kind.detail_type(), "Link Disconnected");
        assert_eq!(
            (
                &n.detail["copies_removed"],
                &n.detail["copies_kept"],
                &n.detail["not_removed"]
            ),
            (&json!(3), &json!(["e1"]), &json!(["e2"]))
        );
        assert_eq!(n.detail["link_id"], "l1");
    }
}
