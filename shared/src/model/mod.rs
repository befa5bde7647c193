//! Records held in DynamoDB: links, hub events, mappings, cursors, run records.
//! Times are whole seconds (`*_at`) or milliseconds (`*_ms`) since the Unix epoch, UTC.

use serde::{Deserialize, Serialize};

pub use crate::provider::registry::ProviderKind;

mod run;
pub use run::{EventNotice, NoticeKind, RunRecord};

/// What to do when the same field changed on the hub and on the remote since they last agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Field-level merge; where the same field changed on both sides the newer side wins
    /// (LAST-MODIFIED), and the conflict is recorded.
    #[default]
    Merge,
    /// The hub's value wins.
    PreferHub,
    /// The remote's value wins.
    PreferRemote,
    /// Keep both versions, mark the event `conflict`, apply neither.
    Manual,
}

impl std::str::FromStr for ConflictPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "merge" => Ok(Self::Merge),
            "prefer-hub" => Ok(Self::PreferHub),
            "prefer-remote" => Ok(Self::PreferRemote),
            "manual" => Ok(Self::Manual),
            other => Err(format!(
                "conflict policy {other:?}: expected merge, prefer-hub, prefer-remote or manual"
            )),
        }
    }
}

/// Health of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// Last sync succeeded.
    #[default]
    Ok,
    /// Last sync failed; `status_reason` says why.
    Error,
    /// A pull would have deleted too much; deletions held back (invariant 7).
    Quarantined,
    /// Credentials were rejected; the user must reconnect.
    ReconnectNeeded,
    /// Being disconnected: sync-back deletes calsync's copies of events made elsewhere from
    /// the calendar ([`crate::disconnect::remove_copies`]), then the link is disconnected.
    /// It neither pulls nor receives other changes meanwhile; `status_reason` says why
    /// removing stopped, when it did.
    Removing,
}

impl LinkStatus {
    /// Whether a link in this status syncs: pulls on its schedule and on notifications,
    /// receives the other members' changes and holds push channels. Not while it waits for
    /// its user to reconnect, nor while its copies are removed.
    pub fn syncs(self) -> bool {
        !matches!(self, Self::ReconnectNeeded | Self::Removing)
    }
}

/// One member calendar of a sync group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Primary key.
    pub link_id: String,
    /// The sync group this calendar belongs to.
    pub group_id: String,
    /// Application user owning the link (AutoSync `userId`).
    pub user_id: i64,
    /// Provider.
    pub provider: ProviderKind,
    /// CalDAV: calendar collection URL; ICS: feed URL (http, https, webcal).
    pub url: String,
    /// Secrets Manager ARN of the credentials (CalDAV password, Google OAuth tokens); never
    /// the credentials themselves.
    #[serde(default)]
    pub secret_arn: Option<String>,
    /// Seconds between scheduled syncs (e.g. 900, 3600, 86400).
    pub frequency_secs: i64,
    /// When the schedule next makes this link due (epoch seconds, UTC).
    pub next_sync_at: i64,
    /// The link's shard of the links table's `due-index` ([`Link::due_shard_of`]), which
    /// the schedule queries by `next_sync_at`. Links written before the index carry none
    /// until their next sync or the refresher's pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_shard: Option<u8>,
    /// When the access token in the link's secret expires (epoch seconds, UTC), as calsync
    /// last recorded it: at consent and by the token refresher. Never later than the real
    /// expiry (a sync run that refreshes on demand leaves it earlier), so the refresher
    /// reads the secret only of links whose recorded expiry is within its margin
    /// ([`crate::refresher::token_check_due`]). Not a secret. `None`: not recorded (links
    /// from before it was, and CalDAV and ICS links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<i64>,
    /// When the token refresher next looks after this link (epoch seconds, UTC): the
    /// earliest of its access token's refresh time ([`Link::token_expires_at`] less
    /// [`crate::refresher::MARGIN_SECS`]) and its push channel's renewal time (the channel's
    /// expiry less [`crate::push::PushPort::renew_before_ms`]), written by the refresher
    /// after each look ([`crate::refresher::plan::next_upkeep`]); set to now by whatever
    /// wants a look sooner (a consent, a reconnection, a channel that could not be
    /// started). Never later than either need. The links table's sparse key-only GSI
    /// `upkeep-index` (`due_shard`, `upkeep_at`) lets a refresher run read only the links
    /// that are due. `None`: nothing to look after (CalDAV, ICS, a link waiting for its
    /// user to reconnect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upkeep_at: Option<i64>,
    /// Conflict policy applied when this link's pull meets a concurrent hub change.
    #[serde(default)]
    pub conflict_policy: ConflictPolicy,
    /// Deletion brake: a pull deleting more than this share of mapped events is quarantined...
    pub brake_ratio: f64,
    /// ...if it also deletes at least this many events.
    pub brake_min: u32,
    /// Set by an operator to let a quarantined mass deletion through once.
    #[serde(default)]
    pub allow_mass_delete: bool,
    /// CalDAV only: use CS:getctag + getetag listing instead of RFC 6578 sync-collection.
    #[serde(default)]
    pub force_ctag: bool,
    /// Health.
    #[serde(default)]
    pub status: LinkStatus,
    /// Human-readable reason for a non-ok status.
    #[serde(default)]
    pub status_reason: Option<String>,
    /// Name shown in reports.
    #[serde(default)]
    pub display_name: String,
    /// Push notifications received for this link so far (a counter the webhook increments).
    #[serde(default)]
    pub push_seq: i64,
    /// The `push_seq` read at the start of the last successful pull: notifications up to it
    /// arrived before that pull listed the calendar, so their jobs have nothing left to do.
    #[serde(default)]
    pub covered_push_seq: i64,
    /// Runs that failed in a row (reset by a successful run); the application hears of a
    /// failing link when it reaches 3.
    #[serde(default)]
    pub consecutive_failures: i64,
    /// What this member gets of the other members' events ([`crate::engine::transform`]);
    /// events made on it ([`Mapping::home`]) stay whole there.
    #[serde(default)]
    pub transforms: crate::engine::transform::Transforms,
    /// Outlook: write the attendees of events the calendar's owner organizes (Graph sends
    /// them invitations; it cannot be told not to). Off by default, so sync sends no mail;
    /// other providers write attendees without mail anyway (Google `sendUpdates=none`,
    /// CalDAV `SCHEDULE-AGENT=CLIENT`).
    #[serde(default)]
    pub write_attendees: bool,
    /// When a push last re-applied the link's time window (epoch seconds, UTC): the window
    /// moves with the days, so a pull queues such a push once a day even when nothing
    /// changed.
    #[serde(default)]
    pub window_checked_at: i64,
    /// The push watermark (epoch ms, UTC): the last complete push of this link read the hub
    /// at this time, so every hub event written [`crate::engine::PUSH_OVERLAP_MS`] before it
    /// is on the member or recorded as not owed. A sync-back then reads only the hub's later
    /// changes (GSI `changes-index`); `None`: the next push reads the whole group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_through_ms: Option<i64>,
    /// Pushes of this link that read the whole group, counted as each begins (before its
    /// read; [`crate::store::Store::begin_full_push`]).
    #[serde(default)]
    pub full_push_seq: i64,
    /// The [`Link::full_push_seq`] of the last such push that completed: a catch-up queued
    /// by a pull that saw an earlier count is covered by it and skipped
    /// ([`crate::queue::SyncJob::after_full_push`]).
    #[serde(default)]
    pub full_pushed_seq: i64,
    /// OAuth links: which provider account the tokens belong to, as
    /// [`crate::oauth::account_key`] (a digest, not the address); GSI `account-index`, so
    /// that a disconnect finds every link, of any application user, that shares the
    /// account's grant. `None`: unknown (CalDAV, ICS, links connected before it was
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Links whose `url` is kept redacted (feeds, whose address can hold a private key):
    /// [`crate::provider::account::url_digest`] of the full address, so that a second link
    /// of the same feed into a group is refused without the address being stored. `None`:
    /// the `url` is the address, or a feed linked before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_digest: Option<String>,
}

impl Link {
    /// A link with the defaults: hourly, merge policy, brake at >50% and >=5 deletions.
    pub fn new(
        link_id: &str,
        group_id: &str,
        user_id: i64,
        provider: ProviderKind,
        url: &str,
    ) -> Self {
        Self {
            link_id: link_id.into(),
            group_id: group_id.into(),
            user_id,
            provider,
            url: url.into(),
            secret_arn: None,
            frequency_secs: 3600,
            next_sync_at: 0,
            due_shard: Some(Self::due_shard_of(link_id)),
            token_expires_at: None,
            upkeep_at: None,
            conflict_policy: ConflictPolicy::Merge,
            brake_ratio: 0.5,
            brake_min: 5,
            allow_mass_delete: false,
            force_ctag: false,
            status: LinkStatus::Ok,
            status_reason: None,
            display_name: link_id.into(),
            push_seq: 0,
            covered_push_seq: 0,
            pushed_through_ms: None,
            full_push_seq: 0,
            account: None,
            url_digest: None,
            full_pushed_seq: 0,
            consecutive_failures: 0,
            transforms: Default::default(),
            write_attendees: false,
            window_checked_at: 0,
        }
    }

    /// Shards of the `due-index` (its partition key): the schedule's tick reads each shard's
    /// due links with one Query, so that no partition of the index takes every link's
    /// writes (each run moves `next_sync_at`). 16 shards carry a million links at 15-minute
    /// frequencies (about 1,100 index writes a second, 70 a shard; `docs/performance.md`).
    pub const DUE_SHARDS: u8 = 16;

    /// The `due-index` shard of `link_id`: the first byte of its SHA-256, modulo
    /// [`Link::DUE_SHARDS`] (stable, so rewriting it is idempotent).
    pub fn due_shard_of(link_id: &str) -> u8 {
        use sha2::Digest;
        sha2::Sha256::digest(link_id.as_bytes())
            .first()
            .copied()
            .unwrap_or(0)
            % Self::DUE_SHARDS
    }

    /// The calendar this link connects, as a key that does not reveal its address: the
    /// first 32 hex digits of [`crate::provider::account::url_digest`] of the address (a
    /// feed's stored digest, whose address is kept redacted). Two links of one calendar
    /// have the same key ([`HubEvent::made_on`]).
    pub fn calendar_key(&self) -> String {
        let digest = match &self.url_digest {
            Some(d) => d.clone(),
            None => crate::provider::account::url_digest(&self.url),
        };
        digest.chars().take(32).collect()
    }

    /// The numeric `calendarType` (see [`ProviderKind::calendar_type`]).
    pub fn calendar_type(&self) -> i64 {
        self.provider.calendar_type()
    }

    /// The ARN of the link's credentials secret.
    ///
    /// Errors: the link has none (every CalDAV and OAuth link must).
    pub fn required_secret(&self) -> anyhow::Result<&str> {
        self.secret_arn.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "link {}: {} link without secret_arn",
                self.link_id,
                self.provider.info().display_name
            )
        })
    }

    /// Read-only members (ICS subscriptions) get nothing pushed
    /// ([`crate::provider::registry::ProviderInfo::read_only`]).
    pub fn read_only(&self) -> bool {
        self.provider.info().read_only
    }
}

/// The canonical event of a group: one UID, a monotonic version and a tombstone for deletes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubEvent {
    /// Partition key.
    pub group_id: String,
    /// iCalendar UID (sort key).
    pub uid: String,
    /// Incremented on every change; writes are conditional on the previous value.
    pub version: i64,
    /// The series as a VCALENDAR object (see [`crate::ical::EventSeries::to_ical`]); empty
    /// in a head ([`crate::store::Store::event_heads_of_group`]).
    #[serde(default)]
    pub ical: String,
    /// Tombstone: the event was deleted at `updated_ms`.
    #[serde(default)]
    pub deleted: bool,
    /// Last change (epoch milliseconds).
    pub updated_ms: i64,
    /// Link whose pull produced the last change.
    #[serde(default)]
    pub origin_link: String,
    /// The calendar the event was made on, as [`Link::calendar_key`] of the link whose pull
    /// brought it into the hub ([`Mapping::home`] there), kept through every later change.
    /// A link of that calendar made later (one disconnected and linked again) finds the
    /// event there as its own. [`MADE_BY_API`]: made by the application. `None`: written
    /// before this was recorded. Left out of the item when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_on: Option<String>,
}

/// [`HubEvent::made_on`] of an event the application made (`PUT …/events/{uid}` of a new
/// UID): no calendar's own.
pub const MADE_BY_API: &str = "api";

/// Per-event sync status on one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Remote and hub agree.
    #[default]
    Synced,
    /// A change is waiting to be written to the remote.
    Pending,
    /// The provider rejected the event or its data is malformed; `error` says why.
    Error,
    /// Manual policy: both versions kept, neither applied.
    Conflict,
}

/// Per (link, hub event): where the event lives remotely and what was last agreed.
/// True when a mapping's href is absent or empty (not stored, see [`Mapping::href`]).
fn no_href(h: &Option<crate::provider::RemoteId>) -> bool {
    h.as_ref().is_none_or(|h| h.is_empty())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// Partition key.
    pub link_id: String,
    /// Hub UID (sort key); `href:<href>` for remote data without a readable UID.
    pub uid: String,
    /// Remote id: CalDAV href (path or absolute URL) or `ics:<uid>`. Left out of the item
    /// when there is none (it keys the sparse GSI `href-index`, which takes no null or
    /// empty string).
    #[serde(default, skip_serializing_if = "no_href")]
    pub href: Option<crate::provider::RemoteId>,
    /// Remote version (CalDAV etag, ICS content hash); a pulled version equal to this is our
    /// own write echoed back (write receipt) or unchanged.
    #[serde(default)]
    pub etag: Option<crate::provider::Etag>,
    /// Content last agreed between hub and remote (VCALENDAR), the base of three-way merges.
    #[serde(default)]
    pub base: Option<String>,
    /// Hub version the remote reflects.
    pub synced_version: i64,
    /// Sync status of this event on this link.
    #[serde(default)]
    pub status: EventStatus,
    /// Last provider error or conflict note.
    #[serde(default)]
    pub error: Option<String>,
    /// Manual policy: the remote version kept aside.
    #[serde(default)]
    pub conflict_remote: Option<String>,
    /// Hub version whose write the provider rejected; not retried until the event changes.
    #[serde(default)]
    pub failed_version: Option<i64>,
    /// The link's transforms leave this event out (version `synced_version`): nothing is
    /// on the member, and nothing is owed to it.
    #[serde(default)]
    pub excluded: bool,
    /// A read-only member's object carrying the UID of an event that another member brought
    /// into the hub: never applied, never deleted from the hub (a feed may change only its
    /// own events).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub foreign: bool,
    /// The event is this member's own: its first pull into the hub came from this link (the
    /// UID was new to the hub, or only a tombstone), or the link's pull found its own copy
    /// of an event another member brought (not mapped here, and not what calsync writes
    /// here of it: one invitation on two calendars). The link's transforms are for other
    /// members' events; this one is written and read back whole
    /// ([`crate::engine::transform::for_mapping`]). Left out of the item when false;
    /// mappings written before it was recorded read as false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub home: bool,
    /// Last change (epoch milliseconds).
    pub updated_ms: i64,
}

impl Mapping {
    /// An empty mapping for `uid` on `link_id`.
    pub fn new(link_id: &str, uid: &str) -> Self {
        Self {
            link_id: link_id.into(),
            uid: uid.into(),
            href: None,
            etag: None,
            base: None,
            synced_version: 0,
            status: EventStatus::Pending,
            error: None,
            conflict_remote: None,
            failed_version: None,
            excluded: false,
            foreign: false,
            home: false,
            updated_ms: crate::config::now_millis(),
        }
    }

    /// True when the provider rejected hub version `version` of this event.
    pub fn failed_at(&self, version: i64) -> bool {
        self.status == EventStatus::Error && self.failed_version == Some(version)
    }
}

/// A push channel of a link: a Google channel (`events.watch`) or a Graph subscription,
/// started and read by the provider's [`crate::push::PushPort`]. The channel's secret
/// (Google channel token, Graph `clientState`) is not stored: only its SHA-256, compared in
/// constant time when a notification arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRecord {
    /// Primary key: the channel id (ours for Google, `X-Goog-Channel-ID`; the subscription
    /// id Graph chose).
    pub channel_id: String,
    /// The watched link.
    pub link_id: String,
    /// Whose channel it is. Records written before the registry carry no provider; Google
    /// was then the only provider with push.
    #[serde(default = "legacy_channel_provider")]
    pub provider: ProviderKind,
    /// Token secret of the account (to stop the channel even after the link is gone).
    pub secret_arn: String,
    /// The link's provider account ([`Link::account`]) when it was recorded: the channel's
    /// own calls (renew, stop) spend that account's quota. Records written before carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Calendar URL of the link (idem).
    pub url: String,
    /// The provider's id of the watched resource (Google `X-Goog-Resource-ID`, needed by
    /// `channels.stop`; Graph's subscription `resource`).
    pub resource_id: String,
    /// SHA-256 (hex) of the channel's secret.
    pub token_sha256: String,
    /// Channel expiry, epoch milliseconds (UTC).
    pub expiration_ms: i64,
}

fn legacy_channel_provider() -> ProviderKind {
    ProviderKind::Google
}

/// A consent in progress (OAuth `state`), deleted when the callback uses it; TTL 10 minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthState {
    /// Primary key: the `state` value sent to the consent page.
    pub state: String,
    /// PKCE verifier (RFC 7636) for the code exchange; single use, expires with the record.
    pub verifier: String,
    /// Group the new calendar joins.
    pub group_id: String,
    /// Application user.
    pub user_id: i64,
    /// The provider whose consent this is. Records written before the registry carry none
    /// (Google was then the only OAuth provider); they expire within 10 minutes.
    #[serde(default = "legacy_channel_provider")]
    pub provider: ProviderKind,
    /// Calendar to sync, in the provider's terms (Google `primary` or a calendarList id).
    pub calendar_id: String,
    /// Name shown in reports.
    pub display_name: String,
    /// The provider's consent page with this state and PKCE challenge; the browser is sent
    /// there by the begin route, which binds the consent to that browser.
    #[serde(default)]
    pub auth_url: String,
    /// Set once the begin route has bound the consent to a browser (single use).
    #[serde(default)]
    pub begun: bool,
    /// A reconnection: the link whose grant this consent renews (its tokens are replaced and
    /// it is `ok` again) instead of a new link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    /// What the new link is set to (frequency, conflict policy); unset: the defaults.
    #[serde(default)]
    pub choices: LinkChoices,
    /// TTL (epoch seconds).
    pub expires_at: i64,
}

/// What a user chose for a link at its connection; `None`: the default ([`Link::new`]'s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkChoices {
    /// Seconds between scheduled syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_secs: Option<i64>,
    /// How conflicting edits are settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_policy: Option<ConflictPolicy>,
}

impl LinkChoices {
    /// Set `link`'s fields to the choices made.
    pub fn apply(&self, link: &mut Link) {
        if let Some(f) = self.frequency_secs {
            link.frequency_secs = f;
        }
        if let Some(p) = self.conflict_policy {
            link.conflict_policy = p;
        }
    }
}

/// A sync group: the application's own calendar (the hub) of one user and its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Primary key (`grp-<uuid v7>`, chosen by calsync).
    pub group_id: String,
    /// The application user who owns it (from the verified token, never from a request).
    pub user_id: i64,
    /// Name shown to the user.
    #[serde(default)]
    pub name: String,
    /// Creation time (epoch milliseconds, UTC).
    pub created_ms: i64,
}
