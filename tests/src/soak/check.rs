//! Quiescence and the invariant checks of one schedule.

use std::collections::BTreeMap;

use base64::Engine as _;
use secrecy::ExposeSecret;

use super::members::{start_day, Holdings};
use super::world::World;
use crate::fixtures;

impl World<'_> {
    async fn caldav_holds(&self, url: &str) -> anyhow::Result<Holdings> {
        let mut out = Holdings::new();
        for (_, s) in fixtures::events_in(self.ctx, url).await? {
            let day = start_day(&s);
            let e = out.entry(s.uid.clone()).or_insert((s.summary(), day, 0));
            e.2 += 1;
        }
        Ok(out)
    }

    /// Quiescence (faults cleared, queues drained, every link synced) and the checks.
    pub async fn settle_and_check(&mut self, epoch: usize) -> anyhow::Result<()> {
        self.env.proxy.clear_faults();
        for _ in 0..3 {
            fixtures::sync_user(self.ctx, self.user).await?;
        }
        let want: BTreeMap<String, (String, u32)> = self
            .model
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        let mut members = vec![
            ("Radicale", self.caldav_holds(&self.radicale).await?),
            ("Xandikos", self.caldav_holds(&self.xandikos).await?),
        ];
        if let Some(g) = &self.google {
            members.push(("Google", g.holds().await?));
        }
        if let Some(o) = &self.outlook {
            members.push(("Outlook", o.holds(&self.env.outlook).await?));
        }
        for (name, held) in members {
            for (uid, (_, _, n)) in &held {
                if *n > 1 {
                    self.violation(format!("epoch {epoch}: {name} holds {uid} {n} times"));
                }
            }
            let got: BTreeMap<String, (String, u32)> =
                held.into_iter().map(|(k, (s, d, _))| (k, (s, d))).collect();
            if got != want {
                self.violation(format!(
                    "epoch {epoch}: {name} differs from the user's intent: has {got:?}, want {want:?}"
                ));
            }
        }
        let hub: Vec<String> = self
            .ctx
            .store()
            .events_of_group(&self.group)
            .await?
            .into_iter()
            .filter(|e| !e.deleted)
            .map(|e| e.uid)
            .collect();
        if hub != want.keys().cloned().collect::<Vec<_>>() {
            self.violation(format!("epoch {epoch}: hub holds {hub:?}"));
        }
        self.check_mail_free(epoch);
        // Quiet: nothing to write, one request per pull.
        let before = self.run_counts().await?;
        let stats = fixtures::sync_user(self.ctx, self.user).await?;
        if stats.pushes != 0 {
            self.violation(format!("epoch {epoch}: a quiet sync pushed {stats:?}"));
        }
        for (link, runs) in self.new_runs(&before).await? {
            for r in runs {
                if r.kind == "pull" && (r.api_calls > 1 || r.created + r.updated + r.deleted > 0) {
                    self.violation(format!("epoch {epoch}: quiet pull of {link}: {r:?}"));
                }
            }
        }
        // Cursor loss: a full re-enumeration changes nothing.
        for l in self.links() {
            self.ctx.store().delete_cursor(&l.link_id).await?;
        }
        let before = self.run_counts().await?;
        fixtures::sync_user(self.ctx, self.user).await?;
        for (link, runs) in self.new_runs(&before).await? {
            for r in runs {
                if r.created + r.updated + r.deleted > 0 {
                    self.violation(format!("epoch {epoch}: after cursor loss, {link}: {r:?}"));
                }
            }
        }
        Ok(())
    }

    /// Every write calsync made to Google asked for no notification (`sendUpdates=none`);
    /// the user's own writes carry [`crate::google::USER_SEND_UPDATES`].
    fn check_mail_free(&mut self, epoch: usize) {
        if self.google.is_none() {
            return;
        }
        let noisy: Vec<String> = self
            .env
            .google
            .emu
            .sends()
            .into_iter()
            .filter(|s| {
                !matches!(s.send_updates.as_deref(), Some("none"))
                    && s.send_updates.as_deref() != Some(crate::google::USER_SEND_UPDATES)
            })
            .map(|s| {
                format!(
                    "{} {} sendUpdates={:?}",
                    s.method, s.event_id, s.send_updates
                )
            })
            .collect();
        if !noisy.is_empty() {
            self.violation(format!(
                "epoch {epoch}: Google writes that may mail guests: {noisy:?}"
            ));
        }
    }

    /// Nothing the schedule logged holds the CalDAV password (plain or in a Basic header),
    /// an OAuth client secret or the Google and Outlook links' tokens. Empties the captured
    /// logs.
    pub async fn check_secrets_not_logged(&mut self) -> anyhow::Result<()> {
        let mut secrets: Vec<(&str, String)> = vec![
            ("CalDAV password", fixtures::PASSWORD.to_string()),
            (
                "CalDAV Basic credentials",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    fixtures::USER,
                    fixtures::PASSWORD
                )),
            ),
            (
                "OAuth client secret",
                crate::google::CLIENT_SECRET.to_string(),
            ),
        ];
        secrets.push((
            "Outlook client secret",
            crate::outlook::CLIENT_SECRET.to_string(),
        ));
        let arns = [
            self.google.as_ref().and_then(|g| g.link.secret_arn.clone()),
            self.outlook
                .as_ref()
                .and_then(|o| o.link.secret_arn.clone()),
        ];
        for arn in arns.into_iter().flatten() {
            let t = calsync::oauth::read_tokens(self.ctx, &arn).await?;
            secrets.push(("access token", t.access_token.expose_secret().to_string()));
            if let Some(r) = &t.refresh_token {
                secrets.push(("refresh token", r.expose_secret().to_string()));
            }
        }
        let logged = self.env.logs.take();
        if logged.is_empty() {
            // calsync logs every run at debug: nothing captured means another subscriber
            // took the logs, and this check would pass without looking.
            self.violation("no logs were captured: the secret check could not look".into());
        }
        for (what, value) in secrets {
            if !value.is_empty() && logged.contains(&value) {
                self.violation(format!("the {what} was logged"));
            }
        }
        Ok(())
    }

    async fn run_counts(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        let mut out = BTreeMap::new();
        for l in self.links() {
            let n = self.ctx.store().runs_of_link(&l.link_id).await?.len();
            out.insert(l.link_id.clone(), n);
        }
        Ok(out)
    }

    async fn new_runs(
        &self,
        before: &BTreeMap<String, usize>,
    ) -> anyhow::Result<Vec<(String, Vec<calsync::model::RunRecord>)>> {
        let mut out = Vec::new();
        for l in self.links() {
            let runs = self.ctx.store().runs_of_link(&l.link_id).await?;
            let skip = before.get(&l.link_id).copied().unwrap_or(0);
            out.push((
                l.display_name.clone(),
                runs.into_iter().skip(skip).collect(),
            ));
        }
        Ok(out)
    }
}
