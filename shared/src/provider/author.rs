//! Who wrote a remote object ([`Author`]).

/// Who wrote a remote object, as far as its provider can tell from calsync's private marker.
///
/// calsync puts its UID in a property of its own on everything it writes to Google
/// (`extendedProperties.private.calsyncUid`, "private to the copy of the event that appears
/// on this calendar") and Outlook (a single-value extended property on the event it wrote):
/// an object without it was made by the calendar's owner, another app or an invitation,
/// never by calsync. On CalDAV calsync marks each VEVENT it writes with a property of its
/// own (`caldav::mark`), but a server or client may drop it: a marked object is
/// [`Author::Calsync`], an unmarked one [`Author::Unknown`]. An ICS feed is always
/// [`Author::Unknown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Author {
    /// The provider cannot tell (an unmarked CalDAV object, ICS), or the object's data is
    /// not read yet.
    #[default]
    Unknown,
    /// The object carries calsync's marker: calsync created it, or wrote it since.
    Calsync,
    /// The provider marks every calsync write and this object has no mark: not calsync's.
    Other,
}

impl Author {
    /// [`Author::Calsync`] when `marked`, else [`Author::Other`] (for a provider that marks
    /// every write).
    pub fn from_marker(marked: bool) -> Self {
        if marked {
            Author::Calsync
        } else {
            Author::Other
        }
    }
}
