//! The page a consent window shows once the provider redirected back to
//! `…/oauth/{slug}/callback` ([`crate::http_api`]): a small HTML document that says, in
//! words, whether the calendar was connected, renewed or refused and why, and that the
//! window can be closed. The settings page follows the connection through the API
//! (`GET /v1/groups/{group_id}/links`); this page is what the person sees meanwhile.
//!
//! Everything interpolated is HTML-escaped (a calendar's name comes from the provider), and
//! the page is served with a Content-Security-Policy that allows no script and no
//! resource ([`CSP`]). `data-status` and `data-link-id` on `#result` are for programs
//! ([`link_id_of`]).

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A new link to `calendar` (its display name).
    Connected { calendar: &'a str, link_id: &'a str },
    /// An existing link got the new tokens: a reconnection, or a consent for a calendar
    /// the group links already.
    Renewed { calendar: &'a str, link_id: &'a str },
    /// Nothing was stored; `reason` says why (an error's text, no secret in it).
    Refused { reason: &'a str },
}

/// The page's Content-Security-Policy: no script, no frame, no resource but its own inline
/// style.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// The page for `outcome` of a consent for a `provider` calendar (its display name, e.g.
/// "Google Calendar").
pub fn render(provider: &str, outcome: Outcome<'_>) -> String {
    let (title, status, link_id, message) = match outcome {
        Outcome::Connected { calendar, link_id } => (
            "Calendar connected",
            "connected",
            link_id,
            format!(
                "{} ({provider}) is connected. Its first sync is on its way.",
                quoted(calendar)
            ),
        ),
        Outcome::Renewed { calendar, link_id } => (
            "Calendar reconnected",
            "renewed",
            link_id,
            format!(
                "{} ({provider}) was connected already; it syncs with this sign-in from now on.",
                quoted(calendar)
            ),
        ),
        Outcome::Refused { reason } => (
            "Calendar not connected",
            "refused",
            "",
            format!("Nothing was connected: {}.", reason.trim_end_matches('.')),
        ),
    };
    let next = if status == "refused" {
        "Close this window and try again from where you started."
    } else {
        "You can close this window."
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} – calsync</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}}</style>\
         </head><body><main><h1>{title}</h1>\
         <p id=\"result\" data-status=\"{status}\" data-link-id=\"{}\">{}</p><p>{next}</p>\
         </main></body></html>\n",
        escape(link_id),
        escape(&message),
    )
}

/// "Work", or "The calendar" when the name is empty.
fn quoted(name: &str) -> String {
    if name.trim().is_empty() {
        "The calendar".into()
    } else {
        format!("“{}”", name.trim())
    }
}

/// `text` with `& < > " '` as character references (HTML text and attribute values).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The link id a page rendered for a connected or renewed calendar names (`None` for a
/// refusal or another document).
pub fn link_id_of(page: &str) -> Option<&str> {
    let (_, rest) = page.split_once(" data-link-id=\"")?;
    let id = rest.split('"').next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_says_what_happened_with_its_text_escaped() {
        let hostile = "<script>alert('x')</script> & \"Work\"";
        let table: &[(Outcome, &[&str], Option<&str>)] = &[
            (
                Outcome::Connected {
                    calendar: "Work",
                    link_id: "google-01",
                },
                &[
                    "<h1>Calendar connected</h1>",
                    "“Work” (Google Calendar) is connected.",
                    "data-status=\"connected\"",
                    "You can close this window.",
                ],
                Some("google-01"),
            ),
            (
                Outcome::Renewed {
                    calendar: "",
                    link_id: "google-02",
                },
                &[
                    "<h1>Calendar reconnected</h1>",
                    "The calendar (Google Calendar) was connected already",
                    "data-status=\"renewed\"",
                ],
                Some("google-02"),
            ),
            (
                Outcome::Connected {
                    calendar: hostile,
                    link_id: "google-03",
                },
                &["“&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Work&quot;”"],
                Some("google-03"),
            ),
            (
                Outcome::Refused {
                    reason: "the account signed in to has another calendar there; reconnect with the account that connected this calendar.",
                },
                &[
                    "<h1>Calendar not connected</h1>",
                    "Nothing was connected: the account signed in to has another calendar there; reconnect with the account that connected this calendar.</p>",
                    "data-status=\"refused\"",
                    "try again",
                ],
                None,
            ),
        ];
        for (outcome, has, id) in table {
            let page = render("Google Calendar", *outcome);
            for want in *has {
                assert!(page.contains(want), "{want:?} not in {page}");
            }
            assert!(!page.contains("<script>"), "{page}");
            assert_eq!(link_id_of(&page), *id, "{page}");
        }
        assert_eq!(link_id_of("connected: link x"), None);
    }
}
