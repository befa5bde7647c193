//! The optional members of a schedule — Google, Outlook and a read-only ICS feed — and how
//! the user changes them and what they hold.

use std::collections::BTreeMap;

use calsync::model::Link;
use serde_json::json;

use crate::feed::FeedServer;
use crate::google::UserApi;
use crate::outlook::{LocalOutlook, UserGraph};

/// What a calendar holds: UID → (summary, start day, copies).
pub type Holdings = BTreeMap<String, (String, u32, usize)>;

/// The start day (of January 2027) of a series' master, from its DTSTART line.
pub fn start_day(s: &calsync::ical::EventSeries) -> u32 {
    s.master()
        .and_then(|m| m.get("DTSTART"))
        .and_then(|v| v.first())
        .and_then(|l| l.trim_end().get(14..16))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The schedule's Google calendar.
pub struct GoogleMember {
    /// Its link.
    pub link: Link,
    /// The user's own client of it.
    pub user_api: UserApi,
    /// The emulator's calendar id.
    pub calendar_id: String,
}

impl GoogleMember {
    /// Make the user's change of `uid` (`None`: delete) with the user's own client.
    pub async fn apply(&self, uid: &str, after: Option<&(String, u32)>) -> anyhow::Result<()> {
        let body = |s: &str, d: u32| {
            json!({
                "iCalUID": uid, "summary": s, "location": "Room 1",
                "start": {"dateTime": format!("2027-01-{d:02}T09:00:00Z")},
                "end": {"dateTime": format!("2027-01-{d:02}T10:00:00Z")},
            })
        };
        let items = self.user_api.list().await?;
        let id = items
            .iter()
            .find(|e| e["iCalUID"] == uid)
            .and_then(|e| e["id"].as_str())
            .map(str::to_string);
        match (after, id) {
            (Some((s, d)), None) => {
                self.user_api.insert(body(s, *d)).await?;
            }
            (Some((s, d)), Some(id)) => {
                self.user_api.patch(&id, body(s, *d)).await?;
            }
            (None, Some(id)) => self.user_api.delete(&id).await?,
            (None, None) => anyhow::bail!("{uid} is not in Google to delete"),
        }
        Ok(())
    }

    /// What the calendar holds, as the user's client lists it.
    pub async fn holds(&self) -> anyhow::Result<Holdings> {
        let mut out = Holdings::new();
        for e in self.user_api.list().await? {
            if e["status"] == "cancelled" {
                continue;
            }
            let day = e["start"]["dateTime"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| chrono::Datelike::day(&t.with_timezone(&chrono::Utc)))
                .unwrap_or(0);
            let uid = e["iCalUID"].as_str().unwrap_or_default().to_string();
            let summary = e["summary"].as_str().unwrap_or_default().to_string();
            out.entry(uid).or_insert((summary, day, 0)).2 += 1;
        }
        Ok(out)
    }
}

/// The schedule's Outlook calendar.
pub struct OutlookMember {
    /// Its link.
    pub link: Link,
    /// The user's own Outlook.
    pub user: UserGraph,
}

impl OutlookMember {
    /// Graph event id of each UID as calsync reads the calendar (UIDs of events calsync
    /// wrote are its own, kept in an extended property; of events made in Outlook, their
    /// `iCalUId`).
    async fn ids(&self, lo: &LocalOutlook) -> anyhow::Result<BTreeMap<String, String>> {
        let to = chrono::DateTime::from_timestamp(2_208_988_800, 0).unwrap_or_default();
        let mut out = BTreeMap::new();
        for r in lo.provider(&self.link)?.read_all(to).await? {
            let s =
                calsync::ical::EventSeries::parse_single(&r.href, r.data.as_deref().unwrap_or(""))?;
            out.insert(s.uid, r.href.to_string());
        }
        Ok(out)
    }

    /// Make the user's change in Outlook: create (`uid` `None`: Outlook picks the UID, which
    /// is returned), edit or delete (`after` `None`).
    pub async fn apply(
        &self,
        lo: &LocalOutlook,
        uid: Option<&str>,
        after: Option<&(String, u32)>,
    ) -> anyhow::Result<String> {
        let body = |s: &str, d: u32| {
            json!({
                "subject": s, "location": {"displayName": "Room 1"},
                "start": {"dateTime": format!("2027-01-{d:02}T09:00:00"), "timeZone": "UTC"},
                "end": {"dateTime": format!("2027-01-{d:02}T10:00:00"), "timeZone": "UTC"},
            })
        };
        match (uid, after) {
            (None, Some((s, d))) => {
                self.user.create(body(s, *d)).await?;
                let made = lo
                    .series(&self.link)
                    .await?
                    .into_iter()
                    .find(|x| x.summary() == *s)
                    .ok_or_else(|| {
                        anyhow::anyhow!("the event {s:?} made in Outlook is not there")
                    })?;
                Ok(made.uid)
            }
            (Some(uid), after) => {
                let ids = self.ids(lo).await?;
                let id = ids
                    .get(uid)
                    .ok_or_else(|| anyhow::anyhow!("{uid} is not in Outlook"))?;
                match after {
                    Some((s, d)) => {
                        self.user.patch(id, body(s, *d)).await?;
                    }
                    None => self.user.delete(id).await?,
                }
                Ok(uid.to_string())
            }
            (None, None) => anyhow::bail!("nothing to do"),
        }
    }

    /// What the calendar holds, as calsync reads it.
    pub async fn holds(&self, lo: &LocalOutlook) -> anyhow::Result<Holdings> {
        let mut out = Holdings::new();
        for s in lo.series(&self.link).await? {
            let day = start_day(&s);
            out.entry(s.uid.clone()).or_insert((s.summary(), day, 0)).2 += 1;
        }
        Ok(out)
    }
}

/// The schedule's read-only ICS subscription, whose publisher the user is.
pub struct FeedMember {
    /// Its link.
    pub link: Link,
    /// The feed.
    pub server: FeedServer,
}

impl FeedMember {
    /// Publish `events` (UID → summary, day) as the feed's content.
    pub fn publish<'a>(&self, events: impl Iterator<Item = (&'a String, &'a (String, u32))>) {
        let mut body =
            String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync soak feed//EN\r\n");
        for (uid, (s, d)) in events {
            let one = crate::fixtures::simple_event(uid, s, *d);
            if let (Some(a), Some(b)) = (one.find("BEGIN:VEVENT"), one.find("END:VCALENDAR")) {
                body.push_str(&one[a..b]);
            }
        }
        body.push_str("END:VCALENDAR\r\n");
        self.server.set_body(&body);
    }
}
