//! The provider registry: what each provider is, asked by generic code instead of matching on
//! provider names.
//!
//! Each provider module exports two things: its [`ProviderInfo`] (`INFO`: kind, slug,
//! `calendarType`, read-only or not, writes per bulk request), which is data, and its
//! [`ProviderModule`] (`MODULE`: how to connect a link, list the account's calendars, its
//! OAuth profile and its push mechanism), which is code. [`ProviderKind`] is the stored name
//! of a provider; [`ProviderKind::info`] and [`ProviderKind::module`] are the only places
//! that map a kind to its module. Code that needs only the facts asks `info`: a function
//! that calls no provider (AutoSync's fan-out) then links none of their code. Adding a
//! provider is one module under `shared/src/provider/` plus one variant and two arms here.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Provider;
use crate::config::Ctx;
use crate::model::Link;
use crate::oauth::OAuthProfile;
use crate::push::PushPort;

/// Which provider a link talks to (stored in the links table as its snake_case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Google Calendar API v3 ([`super::google`]).
    Google,
    /// Microsoft Outlook through Graph v1.0 ([`super::outlook`]).
    Outlook,
    /// Any CalDAV server, RFC 4791 ([`super::caldav`]).
    Caldav,
    /// A read-only iCalendar feed ([`super::ics`]).
    Ics,
}

impl ProviderKind {
    /// Every provider, in `calendarType` order.
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::Google,
        ProviderKind::Outlook,
        ProviderKind::Caldav,
        ProviderKind::Ics,
    ];

    /// The module that implements this provider: the registry.
    pub fn module(self) -> &'static dyn ProviderModule {
        match self {
            ProviderKind::Google => &super::google::MODULE,
            ProviderKind::Outlook => &super::outlook::MODULE,
            ProviderKind::Caldav => &super::caldav::MODULE,
            ProviderKind::Ics => &super::ics::MODULE,
        }
    }

    /// What this provider is, as data ([`ProviderInfo`]). Code that needs only these facts
    /// (the AutoSync fan-out's `calendarType` filter, a route's slug) asks here rather than
    /// through [`Self::module`], so that a function which never talks to a provider does
    /// not link every provider's code through the modules' vtables.
    pub fn info(self) -> &'static ProviderInfo {
        match self {
            ProviderKind::Google => &super::google::INFO,
            ProviderKind::Outlook => &super::outlook::INFO,
            ProviderKind::Caldav => &super::caldav::INFO,
            ProviderKind::Ics => &super::ics::INFO,
        }
    }

    /// The provider whose [`ProviderInfo::slug`] is `slug` (a path segment such as
    /// `/webhooks/{slug}`), if any.
    pub fn from_slug(slug: &str) -> Option<ProviderKind> {
        Self::ALL.into_iter().find(|k| k.info().slug == slug)
    }

    /// The numeric `calendarType` of the AutoSync API ([`ProviderInfo::calendar_type`]).
    pub fn calendar_type(self) -> i64 {
        self.info().calendar_type
    }
}

/// What a provider is, as data: each provider module exports it as its `INFO` static.
#[derive(Debug)]
pub struct ProviderInfo {
    /// The stored kind.
    pub kind: ProviderKind,
    /// Lower-case name used in routes (`/webhooks/{slug}`, `/oauth/{slug}/callback`,
    /// `POST /v1/groups/{group_id}/links/oauth/{slug}`), link ids (`{slug}-<uuid>`) and
    /// secret names (`<stack>/{slug}-tokens/<link>`).
    pub slug: &'static str,
    /// Name shown to people ("Google Calendar").
    pub display_name: &'static str,
    /// The MiPlanIt AutoSync `calendarType`: 1 Google, 2 Outlook, 3 CalDAV/iCloud, 4 ICS.
    pub calendar_type: i64,
    /// Read-only members get nothing pushed, and their pulls prefer the remote.
    pub read_only: bool,
    /// Writes a push hands to one [`Provider::write_all`] call (one bulk request where the
    /// provider has one).
    pub write_batch: usize,
    /// Whether a link's URL holds nothing secret and may be shown as it is (CalDAV). Other
    /// URLs are shown as `scheme://host/…` ([`super::redacted`]).
    pub url_is_public: bool,
}

impl ProviderInfo {
    /// The facts most providers share: two-way, 50 writes a bulk call, a URL kept redacted.
    pub const fn new(
        kind: ProviderKind,
        slug: &'static str,
        display_name: &'static str,
        calendar_type: i64,
    ) -> Self {
        ProviderInfo {
            kind,
            slug,
            display_name,
            calendar_type,
            read_only: false,
            write_batch: 50,
            url_is_public: false,
        }
    }
}

/// What a provider is and how calsync talks to it.
#[async_trait]
pub trait ProviderModule: Send + Sync {
    /// What the provider is ([`ProviderKind::info`] of its kind).
    fn info(&self) -> &'static ProviderInfo;

    /// The OAuth 2.0 profile, for providers connected through a consent round trip.
    fn oauth(&self) -> Option<&'static OAuthProfile> {
        None
    }

    /// The push mechanism (Google channels, Graph subscriptions), if the provider has one.
    fn push(&self) -> Option<&'static dyn PushPort> {
        None
    }

    /// The calendars of the account behind `link`, read with its stored credentials, so that
    /// another of them can be connected with the same credentials (`from_link`);
    /// `Ok(None)`: the provider has no account to list (an ICS feed is one calendar).
    ///
    /// Errors: a [`super::ProviderError`] inside the `anyhow::Error` when the provider
    /// answered (`Unauthorized`: its credentials were refused, reconnect first), others
    /// for an unreadable secret.
    async fn calendars(
        &self,
        _ctx: &Ctx,
        _link: &Link,
    ) -> anyhow::Result<Option<Vec<super::account::AccountCalendar>>> {
        Ok(None)
    }

    /// The provider of `link`, its credentials read from Secrets Manager.
    ///
    /// Errors: unreadable secret (named by ARN), invalid URL, a link without its secret.
    async fn connect(&self, ctx: &Ctx, link: &Link) -> anyhow::Result<Box<dyn Provider>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_names_its_module_and_slugs_are_unique() {
        let mut slugs = std::collections::HashSet::new();
        let mut types = std::collections::HashSet::new();
        for k in ProviderKind::ALL {
            let m = k.info();
            assert_eq!(m.kind, k);
            assert!(
                std::ptr::eq(k.module().info(), m),
                "{k:?}: its module answers another kind's facts"
            );
            assert!(slugs.insert(m.slug), "duplicate slug {}", m.slug);
            assert!(types.insert(m.calendar_type));
            assert_eq!(ProviderKind::from_slug(m.slug), Some(k));
            let stored = serde_json::to_value(k).unwrap();
            assert_eq!(stored, serde_json::json!(m.slug), "stored name is the slug");
        }
        assert_eq!(ProviderKind::from_slug("nope"), None);
    }

    #[test]
    fn all_lists_every_kind() {
        // A new variant fails to compile here until it is added to the match, and then
        // fails this test until it is in ALL.
        let every = |k: ProviderKind| match k {
            ProviderKind::Google
            | ProviderKind::Outlook
            | ProviderKind::Caldav
            | ProviderKind::Ics => k,
        };
        for k in [
            ProviderKind::Google,
            ProviderKind::Outlook,
            ProviderKind::Caldav,
            ProviderKind::Ics,
        ] {
            assert!(
                ProviderKind::ALL.contains(&every(k)),
                "{k:?} missing from ALL"
            );
        }
    }

    #[test]
    fn calendar_types_follow_the_autosync_api() {
        let t = |k: ProviderKind| k.calendar_type();
        assert_eq!(
            (
                t(ProviderKind::Google),
                t(ProviderKind::Caldav),
                t(ProviderKind::Ics)
            ),
            (1, 3, 4)
        );
        assert!(ProviderKind::Ics.info().read_only);
        assert!(!ProviderKind::Caldav.info().read_only);
    }
}
