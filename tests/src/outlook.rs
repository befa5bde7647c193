//! Outlook on the local stack: the Graph emulator, its Microsoft identity client in Secrets
//! Manager, the webhook receiver's routes (shared with Google when both run), and helpers to
//! connect a calendar through the consent round trip and read it back.

use calsync::config::Ctx;
use calsync::model::{Link, ProviderKind};
use calsync::provider::outlook::{OutlookCalendar, OAUTH};
use serde_json::json;

use crate::emulators::graph::{Config, GraphEmulator};
use crate::google::{put_secret, Browser, WebhookServer};

/// The emulator's OAuth client.
pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
/// The emulator OAuth client's secret.
pub const CLIENT_SECRET: &str = "emulator-outlook-client-secret";

/// Outlook on the local stack.
pub struct LocalOutlook {
    /// The emulator.
    pub emu: GraphEmulator,
    /// Context whose webhook base is the webhook server's.
    pub ctx: Ctx,
    /// The webhook server when this helper started its own.
    pub hooks: Option<WebhookServer>,
    hooks_url: String,
}

/// The emulator's links go with it ([`crate::forget_links_at`]).
impl Drop for LocalOutlook {
    fn drop(&mut self) {
        crate::forget_links_at(&self.emu.url);
    }
}

impl LocalOutlook {
    /// Start the emulator (API accepting only tokens it issued) and a webhook server of its
    /// own; register and store the OAuth client.
    ///
    /// Errors: ports, Secrets Manager.
    pub async fn start(base: &Ctx, config: Config) -> anyhow::Result<Self> {
        let mut ctx = base.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        ctx.config.webhook_base = Some(url.clone());
        let hooks = WebhookServer::start(ctx.clone(), listener).await?;
        let mut me = Self::beside(&ctx, &url, config).await?;
        me.hooks = Some(hooks);
        Ok(me)
    }

    /// Start the emulator next to an existing webhook server at `hooks_url` (whose context
    /// `ctx` is).
    ///
    /// Errors: ports, Secrets Manager.
    pub async fn beside(ctx: &Ctx, hooks_url: &str, config: Config) -> anyhow::Result<Self> {
        let emu = GraphEmulator::start(
            "127.0.0.1:0",
            Config {
                require_issued_tokens: true,
                ..config
            },
        )
        .await?;
        let redirect = format!("{hooks_url}/oauth/outlook/callback");
        reqwest::Client::new()
            .post(format!("{}/emulator/oauth/clients", emu.url))
            .json(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect]}))
            .send()
            .await?
            .error_for_status()?;
        let client = json!({
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "auth_uri": format!("{}/common/oauth2/v2.0/authorize", emu.url),
            "token_uri": format!("{}/common/oauth2/v2.0/token", emu.url),
            "redirect_uri": redirect,
            "api_root": emu.api_root(),
        });
        put_secret(
            ctx,
            &OAUTH.client_secret_name(&ctx.config.stack),
            &client.to_string(),
        )
        .await?;
        Ok(Self {
            emu,
            ctx: ctx.clone(),
            hooks: None,
            hooks_url: hooks_url.into(),
        })
    }

    /// The consent URL for `calendar_id` of `group` (what `POST …/links/oauth/outlook`
    /// answers).
    ///
    /// Errors: as [`calsync::connect::start`].
    pub async fn consent_url(
        &self,
        group: &str,
        user_id: i64,
        calendar_id: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        calsync::connect::start(
            &self.ctx,
            &calsync::connect::ConnectRequest {
                provider: ProviderKind::Outlook,
                group_id: group.into(),
                user_id,
                calendar_id: calendar_id.into(),
                display_name: name.into(),
                choices: Default::default(),
            },
        )
        .await
    }

    /// Create the emulator calendar `calendar_id` and connect it to `group` through the
    /// consent round trip; returns the new link.
    ///
    /// Errors: the consent or the callback failed.
    pub async fn connect(
        &self,
        group: &str,
        user_id: i64,
        calendar_id: &str,
        name: &str,
    ) -> anyhow::Result<Link> {
        let url = self.consent_url(group, user_id, calendar_id, name).await?;
        self.finish_consent(calendar_id, name, &url).await
    }

    /// Create the emulator calendar `calendar_id` and open `consent_url` (what the API's
    /// `POST /v1/groups/{group}/links/oauth/outlook` answered) in a browser: our begin (302,
    /// cookie) → Microsoft consent (302) → our callback (200). Returns the new link.
    ///
    /// Errors: the consent or the callback failed.
    pub async fn finish_consent(
        &self,
        calendar_id: &str,
        name: &str,
        url: &str,
    ) -> anyhow::Result<Link> {
        self.emu.add_calendar(calendar_id, name);
        self.open_consent(url).await
    }

    /// Open a connection's or a reconnection's consent `url` in a browser (the emulator signs
    /// in as its default mailbox unless `sign_in_next_as` said otherwise); returns the link
    /// the callback stored or renewed.
    ///
    /// Errors: the callback did not answer 200 (its status and text are in the error).
    pub async fn open_consent(&self, url: &str) -> anyhow::Result<Link> {
        let (status, body) = Browser::default().open(url).await?;
        anyhow::ensure!(status == 200, "connect failed: {status} {body}");
        let id = calsync::consent_page::link_id_of(&body).ok_or_else(|| {
            anyhow::anyhow!(
                "unexpected callback answer {body:?} from {}",
                self.hooks_url
            )
        })?;
        self.ctx
            .store()
            .get_link(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("link {id} not stored"))
    }

    /// A provider for `link` acting as calsync does.
    ///
    /// Errors: not an Outlook URL.
    pub fn provider(&self, link: &Link) -> anyhow::Result<OutlookCalendar> {
        OutlookCalendar::with_link_tokens(
            &self.ctx,
            &link.url,
            link.secret_arn.as_deref().unwrap_or_default(),
            link.account.as_deref(),
        )
    }

    /// Every series of the link's calendar, read whole (until 2040).
    ///
    /// Errors: reading failed or a series does not parse.
    pub async fn series(&self, link: &Link) -> anyhow::Result<Vec<calsync::ical::EventSeries>> {
        let to = chrono::DateTime::from_timestamp(2_208_988_800, 0).expect("2040");
        let mut out = Vec::new();
        for r in self.provider(link)?.read_all(to).await? {
            out.push(calsync::ical::EventSeries::parse_single(
                &r.href,
                r.data.as_deref().unwrap_or(""),
            )?);
        }
        Ok(out)
    }

    /// A fresh access token for the link's account (the user's own app).
    ///
    /// Errors: token refresh failed.
    pub async fn token(&self, link: &Link) -> anyhow::Result<String> {
        use secrecy::ExposeSecret;
        let t = calsync::oauth::access_token(
            &self.ctx,
            &OAUTH,
            link.secret_arn.as_deref().unwrap_or_default(),
            60,
        )
        .await?;
        Ok(t.expose_secret().to_string())
    }
}

/// Occurrences as RFC 5545 §3.8.4.4 defines them, 1970–2040: the master's instances less
/// those a RECURRENCE-ID override replaces, plus each override that is not
/// `STATUS:CANCELLED` (calcard's expansion keeps a replaced instance when the override
/// carries its own DTSTAMP/SEQUENCE, so members would seem to differ where they agree).
pub fn rfc_occurrences(
    series: &[calsync::ical::EventSeries],
) -> std::collections::BTreeSet<calsync::ical::Occurrence> {
    use calsync::ical::lines::{parse_line, When};
    use calsync::ical::{EventSeries, MASTER};
    let from = chrono::DateTime::from_timestamp(0, 0).expect("epoch");
    let to = chrono::DateTime::from_timestamp(2_208_988_800, 0).expect("2040");
    let mut out = std::collections::BTreeSet::new();
    for s in series {
        let single = |fields: &calsync::ical::Fields| EventSeries {
            uid: s.uid.clone(),
            components: [(MASTER.to_string(), fields.clone())].into_iter().collect(),
            timezones: s.timezones.clone(),
        };
        // No DTEND and no DURATION: a date-time event ends when it starts, a date lasts the
        // day (§3.6.1), where calcard would run it to the end of the day.
        let ends = |fields: &calsync::ical::Fields, mut o: calsync::ical::Occurrence| {
            if !fields.contains_key("DTEND") && !fields.contains_key("DURATION") {
                let date = fields
                    .get("DTSTART")
                    .and_then(|v| v.first())
                    .is_some_and(|l| l.contains("VALUE=DATE") && !l.contains("DATE-TIME"));
                o.end = if date {
                    o.start + chrono::Duration::days(1)
                } else {
                    o.start
                };
            }
            o
        };
        let mut replaced = std::collections::BTreeSet::new();
        for (key, fields) in s.components.iter().filter(|(k, _)| k.as_str() != MASTER) {
            let rid = fields
                .get("RECURRENCE-ID")
                .and_then(|v| v.first())
                .or(Some(key))
                .and_then(|l| parse_line(l))
                .and_then(|l| When::parse(&l).ok());
            if let Some(r) = rid {
                replaced.insert(r.instant());
            }
            let cancelled = fields
                .get("STATUS")
                .and_then(|v| v.first())
                .and_then(|l| parse_line(l.trim()))
                .is_some_and(|l| l.value.trim().eq_ignore_ascii_case("CANCELLED"));
            if !cancelled {
                let mut f = fields.clone();
                f.remove("RECURRENCE-ID");
                out.extend(
                    single(&f)
                        .occurrences(from, to, 2)
                        .0
                        .into_iter()
                        .map(|o| ends(&f, o)),
                );
            }
        }
        if let Some(m) = s.components.get(MASTER) {
            out.extend(
                single(m)
                    .occurrences(from, to, 2_000)
                    .0
                    .into_iter()
                    .filter(|o| !replaced.contains(&o.start))
                    .map(|o| ends(m, o)),
            );
        }
    }
    out
}

/// Raw Graph access as the user's own Outlook would change the calendar.
pub struct UserGraph {
    api: String,
    calendar: String,
    token: String,
    http: reqwest::Client,
}

impl LocalOutlook {
    /// The user's own access to the link's calendar.
    ///
    /// Errors: token refresh failed, not an Outlook URL.
    pub async fn user(&self, link: &Link) -> anyhow::Result<UserGraph> {
        let (api, calendar) = calsync::provider::outlook::parse_calendar_url(&link.url)?;
        Ok(UserGraph {
            api,
            calendar,
            token: self.token(link).await?,
            http: reqwest::Client::new(),
        })
    }
}

impl UserGraph {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .header("prefer", "outlook.timezone=\"W. Europe Standard Time\"");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?.error_for_status()?;
        let text = resp.text().await?;
        Ok(if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// Single events and series masters of the calendar.
    pub async fn events(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let v = self
            .send(
                reqwest::Method::GET,
                &format!("/me/calendars/{}/events", self.calendar),
                None,
            )
            .await?;
        Ok(v["value"].as_array().cloned().unwrap_or_default())
    }

    /// Occurrences and exceptions of a series in 2020–2035.
    pub async fn instances(&self, id: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let v = self
            .send(
                reqwest::Method::GET,
                &format!("/me/events/{id}/instances?startDateTime=2020-01-01T00:00:00Z&endDateTime=2035-01-01T00:00:00Z&$top=1000"),
                None,
            )
            .await?;
        Ok(v["value"].as_array().cloned().unwrap_or_default())
    }

    /// `PATCH /me/events/{id}`.
    pub async fn patch(
        &self,
        id: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(
            reqwest::Method::PATCH,
            &format!("/me/events/{id}"),
            Some(body),
        )
        .await
    }

    /// `POST /me/calendars/{cal}/events`.
    pub async fn create(&self, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        self.send(
            reqwest::Method::POST,
            &format!("/me/calendars/{}/events", self.calendar),
            Some(body),
        )
        .await
    }

    /// `DELETE /me/events/{id}`.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.send(reqwest::Method::DELETE, &format!("/me/events/{id}"), None)
            .await
            .map(|_| ())
    }
}

/// Radicale + Xandikos seeded with `seed`, an Outlook calendar connected through the consent
/// (a subscription started on the way) and everything synced.
///
/// Panics when the local stack is not up (test helper).
pub async fn outlook_pair(
    tag: &str,
    seed: &[String],
    config: Config,
) -> (LocalOutlook, crate::fixtures::Pair, Link) {
    let ctx = crate::local_ctx().await;
    let lo = LocalOutlook::start(&ctx, config).await.expect("outlook");
    let p = crate::fixtures::pair(&lo.ctx, tag, seed)
        .await
        .expect("pair");
    let o = lo
        .connect(&p.group, p.user, &crate::fixtures::unique("cal"), "outlook")
        .await
        .expect("connect outlook");
    crate::fixtures::sync_user(&lo.ctx, p.user)
        .await
        .expect("sync");
    (lo, p, o)
}
