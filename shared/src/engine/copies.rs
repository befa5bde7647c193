//! Which objects on a member calendar are calsync's copies of events made elsewhere: what
//! "disconnect and remove the copies" deletes ([`crate::disconnect::remove_copies`]). A pure
//! decision, tested with a table.

use crate::model::{EventStatus, HubEvent, Mapping};

/// What becomes of one mapped object when its link is disconnected with its copies removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// calsync's copy of an event made on another calendar or by the application: deleted
    /// (conditional on the version calsync last saw, so a copy the user edited since stays).
    Remove,
    /// Left on the calendar, for the reason given.
    Keep(KeepReason),
}

/// Why an object stays on a calendar whose copies are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// Nothing of the event is on the calendar: no remote id yet, or the link's transforms
    /// leave it out ([`Mapping::excluded`]).
    NotOnCalendar,
    /// The event is the calendar's own: made there ([`HubEvent::made_on`] is this
    /// calendar's key), first pulled from it ([`Mapping::home`]), or the calendar's own
    /// copy of an invitation.
    OwnEvent,
    /// Where the event was made is not recorded ([`HubEvent::made_on`] absent, data from
    /// before it was) and the last change came from this link: it may be the calendar's own.
    UnknownOrigin,
    /// A read-only member's object ([`Mapping::foreign`]): calsync wrote nothing there.
    ReadOnly,
    /// The manual policy holds a conflict on this event: the calendar's version is an edit
    /// no one has resolved yet.
    UnresolvedConflict,
}

/// The fate of the object `m` names on the calendar whose [`crate::model::Link::calendar_key`]
/// is `calendar_key`, given the hub event `head` of its UID (`None`: no hub event, e.g. the
/// `href:` mapping of an unreadable object of the calendar's own).
pub fn fate(m: &Mapping, head: Option<&HubEvent>, calendar_key: &str) -> Fate {
    use KeepReason::*;
    let keep = Fate::Keep;
    if m.href.as_ref().is_none_or(|h| h.as_str().is_empty()) || m.excluded {
        return keep(NotOnCalendar);
    }
    if m.foreign {
        return keep(ReadOnly);
    }
    if m.home {
        return keep(OwnEvent);
    }
    if m.status == EventStatus::Conflict {
        return keep(UnresolvedConflict);
    }
    let Some(head) = head else {
        return keep(OwnEvent);
    };
    match head.made_on.as_deref() {
        Some(made_on) if made_on == calendar_key => keep(OwnEvent),
        Some(_) => Fate::Remove,
        None if head.origin_link == m.link_id => keep(UnknownOrigin),
        None => Fate::Remove,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MADE_BY_API;
    use crate::provider::RemoteId;

    const HERE: &str = "caldav:here";
    const ELSEWHERE: &str = "google:elsewhere";

    fn mapping(href: Option<&str>) -> Mapping {
        let mut m = Mapping::new("link-here", "uid-1");
        m.href = href.map(RemoteId::new);
        m.status = EventStatus::Synced;
        m
    }

    fn head(made_on: Option<&str>, origin_link: &str) -> HubEvent {
        HubEvent {
            group_id: "g".into(),
            uid: "uid-1".into(),
            version: 3,
            ical: String::new(),
            deleted: false,
            updated_ms: 0,
            origin_link: origin_link.into(),
            made_on: made_on.map(str::to_string),
        }
    }

    #[test]
    fn only_calsyncs_copies_of_events_made_elsewhere_are_removed() {
        use KeepReason::*;
        let on = Some("/cal/uid-1.ics");
        let elsewhere = head(Some(ELSEWHERE), "link-there");
        let api = head(Some(MADE_BY_API), "link-here");
        let own = head(Some(HERE), "link-here");
        let legacy_from_here = head(None, "link-here");
        let legacy_from_there = head(None, "link-there");
        let mut deleted = elsewhere.clone();
        deleted.deleted = true;
        type Row = (&'static str, Mapping, Option<HubEvent>, Fate);
        let with = |f: fn(&mut Mapping)| {
            let mut m = mapping(on);
            f(&mut m);
            m
        };
        let rows: Vec<Row> = vec![
            (
                "copy of another calendar's event",
                mapping(on),
                Some(elsewhere.clone()),
                Fate::Remove,
            ),
            (
                "copy of an event the application made",
                mapping(on),
                Some(api.clone()),
                Fate::Remove,
            ),
            (
                "copy still there of an event deleted elsewhere",
                mapping(on),
                Some(deleted),
                Fate::Remove,
            ),
            (
                "copy not written yet",
                mapping(None),
                Some(elsewhere.clone()),
                Fate::Keep(NotOnCalendar),
            ),
            (
                "empty remote id",
                mapping(Some("")),
                Some(elsewhere.clone()),
                Fate::Keep(NotOnCalendar),
            ),
            (
                "left out by the link's transforms",
                with(|m| m.excluded = true),
                Some(elsewhere.clone()),
                Fate::Keep(NotOnCalendar),
            ),
            (
                "made on this calendar",
                mapping(on),
                Some(own),
                Fate::Keep(OwnEvent),
            ),
            (
                "the calendar's own copy of an invitation",
                with(|m| m.home = true),
                Some(elsewhere.clone()),
                Fate::Keep(OwnEvent),
            ),
            (
                "unreadable object of the calendar (no hub event)",
                mapping(on),
                None,
                Fate::Keep(OwnEvent),
            ),
            (
                "origin unrecorded, last changed from this link",
                mapping(on),
                Some(legacy_from_here),
                Fate::Keep(UnknownOrigin),
            ),
            (
                "origin unrecorded, last changed elsewhere",
                mapping(on),
                Some(legacy_from_there),
                Fate::Remove,
            ),
            (
                "read-only member's object",
                with(|m| m.foreign = true),
                Some(elsewhere.clone()),
                Fate::Keep(ReadOnly),
            ),
            (
                "unresolved manual conflict",
                with(|m| m.status = EventStatus::Conflict),
                Some(elsewhere.clone()),
                Fate::Keep(UnresolvedConflict),
            ),
            (
                "pending change: still calsync's copy",
                with(|m| m.status = EventStatus::Pending),
                Some(elsewhere.clone()),
                Fate::Remove,
            ),
            (
                "rejected write: still calsync's copy",
                with(|m| m.status = EventStatus::Error),
                Some(elsewhere),
                Fate::Remove,
            ),
        ];
        for (what, m, h, want) in rows {
            assert_eq!(fate(&m, h.as_ref(), HERE), want, "{what}");
        }
    }
}
