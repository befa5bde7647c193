//! An initial CalDAV pull lists the calendar with a Depth 1 PROPFIND and applies its objects
//! before it asks the server for its first sync-token (`PullResult::settle`), which Radicale
//! issues only after a pass over every object. What changed on the server between the
//! listing and the token is applied too; the cursor kept is the token. Needs the local
//! stack.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use calsync::config::Ctx;
use calsync::engine::{self, PullFrom};
use calsync::model::RunRecord;
use calsync::provider::{
    self, Cursor, Etag, Provider, ProviderError, PullResult, RemoteId, RemoteRef, WriteResult,
};
use calsync_e2e::fixtures::{
    caldav_link, client_delete, client_edit, client_put, fresh_user, new_calendar, simple_event,
    unique, Server,
};
use calsync_e2e::local_ctx;

/// The link's real CalDAV provider; before its second pull (the one that asks for the
/// token), another client edits one event, deletes one and adds one.
struct ChangedBetween<'a> {
    inner: Box<dyn Provider>,
    ctx: &'a Ctx,
    url: String,
    pulls: AtomicUsize,
}

#[async_trait]
impl Provider for ChangedBetween<'_> {
    async fn pull(&self, cursor: Option<&Cursor>) -> Result<PullResult, ProviderError> {
        if self.pulls.fetch_add(1, Ordering::SeqCst) == 1 {
            client_edit(self.ctx, &self.url, "settle-1", |t| {
                t.replace("SUMMARY:Event 1", "SUMMARY:Edited in between")
            })
            .await
            .expect("edit");
            client_delete(self.ctx, &self.url, "settle-2")
                .await
                .expect("delete");
            client_put(
                self.ctx,
                &self.url,
                &simple_event("settle-new", "Added in between", 20),
            )
            .await
            .expect("add");
        }
        self.inner.pull(cursor).await
    }
    async fn fetch(&self, hrefs: &[RemoteId]) -> Result<Vec<RemoteRef>, ProviderError> {
        self.inner.fetch(hrefs).await
    }
    async fn confirm_removed(&self, hrefs: &[RemoteId]) -> Result<Vec<RemoteId>, ProviderError> {
        self.inner.confirm_removed(hrefs).await
    }
    async fn create(&self, uid: &str, ical: &str) -> Result<WriteResult, ProviderError> {
        self.inner.create(uid, ical).await
    }
    async fn update(
        &self,
        href: &RemoteId,
        ical: &str,
        etag: Option<&Etag>,
    ) -> Result<WriteResult, ProviderError> {
        self.inner.update(href, ical, etag).await
    }
    async fn delete(&self, href: &RemoteId, etag: Option<&Etag>) -> Result<(), ProviderError> {
        self.inner.delete(href, etag).await
    }
    fn uid_of(&self, href: &RemoteId) -> Option<String> {
        self.inner.uid_of(href)
    }
    fn requests(&self) -> u32 {
        self.inner.requests()
    }
}

#[tokio::test]
async fn changes_between_the_listing_and_the_first_sync_token_are_pulled_too() {
    let ctx = local_ctx().await;
    let url = new_calendar(&ctx, Server::Radicale, &unique("settle"))
        .await
        .unwrap();
    for i in 0..5 {
        let ical = simple_event(&format!("settle-{i}"), &format!("Event {i}"), i + 1);
        client_put(&ctx, &url, &ical).await.unwrap();
    }
    let link = caldav_link(&ctx, &unique("group"), fresh_user(), &url, "radicale")
        .await
        .unwrap();
    let p = ChangedBetween {
        inner: provider::connect(&ctx, &link).await.unwrap(),
        ctx: &ctx,
        url: url.clone(),
        pulls: AtomicUsize::new(0),
    };
    let store = ctx.store();
    let mut run = RunRecord::default();
    let out = engine::pull(&store, &link, &p, &mut run, PullFrom::default())
        .await
        .unwrap();

    assert_eq!(
        p.pulls.load(Ordering::SeqCst),
        2,
        "the listing, then the token"
    );
    assert_eq!(
        (run.created, run.updated, run.deleted, run.errors),
        (6, 1, 1, 0),
        "five listed, then one edited, one deleted and one added in between: {run:?}"
    );
    let cursor = out.cursor.expect("a cursor to keep");
    assert!(
        cursor.as_str().starts_with("sync:"),
        "the cursor kept is a sync-token, not {cursor}"
    );
    let mut hub: Vec<(String, String)> = store
        .events_of_group(&link.group_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.deleted)
        .map(|e| {
            let s = calsync::ical::EventSeries::parse_single(&e.uid, &e.ical).unwrap();
            (e.uid, s.summary())
        })
        .collect();
    hub.sort();
    let want = [
        ("settle-0", "Event 0"),
        ("settle-1", "Edited in between"),
        ("settle-3", "Event 3"),
        ("settle-4", "Event 4"),
        ("settle-new", "Added in between"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(u, s)| (u.to_string(), s.to_string()))
        .collect();
    assert_eq!(hub, want);

    // The token was issued after the changes: from it, the server has nothing new.
    let next = p.inner.pull(Some(&cursor)).await.unwrap();
    assert!(
        next.changed.is_empty() && next.removed.is_empty() && !next.full,
        "{next:?}"
    );
}
