//! A real browser for the settings page's tests: Debian's `chromium`, driven through
//! `chromedriver` (W3C WebDriver, <https://www.w3.org/TR/webdriver2/>) by fantoccini, with
//! axe-core (npm, `tests/browser/`) checking accessibility in the page, and full-page
//! screenshots at desktop and phone width under `target/screenshots/`.
//!
//! `make test` installs the packages (`infra/local/browser-deps.sh`); a missing browser is
//! an error, never a skipped test. `CALSYNC_CHROMIUM` / `CALSYNC_CHROMEDRIVER` name other
//! binaries.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Desktop and phone viewports (CSS pixels) of every screenshot.
pub const VIEWPORTS: [(&str, u32, u32); 2] = [("desktop", 1280, 900), ("phone", 390, 844)];

/// How long a wait for the page lasts before the test fails.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// Between two looks at the page while waiting for a condition.
const POLL: Duration = Duration::from_millis(100);

/// A headless Chromium session.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: tokio::process::Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group: the browser goes with it.
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", "--", &format!("-{pid}")])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

impl Browser {
    /// Start chromedriver and a headless Chromium whose time zone is `tz` (IANA) and whose
    /// language is en-US, at the desktop viewport.
    pub async fn start(tz: &str) -> anyhow::Result<Self> {
        let chromium = tool("CALSYNC_CHROMIUM", "/usr/bin/chromium");
        let driver_bin = tool("CALSYNC_CHROMEDRIVER", "/usr/bin/chromedriver");
        anyhow::ensure!(
            std::path::Path::new(&driver_bin).exists() && std::path::Path::new(&chromium).exists(),
            "{driver_bin} or {chromium} is missing: run infra/local/browser-deps.sh (make test does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .env("TZ", tz)
            .env("LANG", "en_US.UTF-8")
            .process_group(0)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {driver_bin}"))?;
        let profile =
            std::env::temp_dir().join(format!("calsync-chromium-{}", uuid::Uuid::now_v7()));
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&url).await?;
        // The flags that keep Chromium from calling out of this closed network.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--lang=en-US",
            "--window-size=1280,900",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        // rustls here has two providers compiled in (ring, and aws-lc through fantoccini's
        // hyper-rustls) and would not pick one itself.
        calsync::net::install_tls();
        let client = ClientBuilder::rustls()?
            .capabilities(caps)
            .connect(&url)
            .await
            .context("opening a WebDriver session")?;
        Ok(Self {
            client,
            driver,
            profile,
        })
    }

    /// Open `url` and wait for the element `css`.
    pub async fn open(&self, url: &str, css: &str) -> anyhow::Result<()> {
        self.client.goto(url).await?;
        self.visible(css).await.map(|_| ())
    }

    /// The first element matching `css`, waiting until it exists and is displayed.
    pub async fn visible(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        until(PAGE_WAIT, async || {
            if let Ok(els) = self.client.find_all(Locator::Css(css)).await {
                for e in els {
                    if e.is_displayed().await.unwrap_or(false) {
                        return Ok(e);
                    }
                }
            }
            Err(format!("no visible {css:?} on the page"))
        })
        .await
    }

    /// Wait until the text of the first element matching `css` contains `want`; that text.
    pub async fn text_contains(&self, css: &str, want: &str) -> anyhow::Result<String> {
        self.text_contains_while(css, want, PAGE_WAIT, async || Ok(()))
            .await
    }

    /// [`Browser::text_contains`], running `between` before each look (the queue runner, say,
    /// standing in for what serves the page's requests), for at most `wait`.
    pub async fn text_contains_while(
        &self,
        css: &str,
        want: &str,
        wait: Duration,
        mut between: impl AsyncFnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<String> {
        until(wait, async || {
            between().await.map_err(|e| e.to_string())?;
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(want) {
                Ok(text)
            } else {
                Err(format!("{css:?} never said {want:?}; last: {text:?}"))
            }
        })
        .await
    }

    /// Type `value` into the field `css`, replacing what it held.
    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let e = self.visible(css).await?;
        e.clear().await?;
        Ok(e.send_keys(value).await?)
    }

    /// Choose the option `value` of the select `css`.
    pub async fn choose(&self, css: &str, value: &str) -> anyhow::Result<()> {
        Ok(self.visible(css).await?.select_by_value(value).await?)
    }

    /// Click the element `css` once it is visible.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        Ok(self.visible(css).await?.click().await?)
    }

    /// Fail, naming `screen` and each rule, when axe-core finds a serious or critical
    /// violation ([`Browser::accessibility_violations`]).
    pub async fn accessible(&self, screen: &str) -> anyhow::Result<()> {
        let found = self.accessibility_violations().await?;
        anyhow::ensure!(
            found.is_empty(),
            "{screen}: axe-core found serious or critical violations:\n{}",
            found.join("\n")
        );
        Ok(())
    }

    /// Run `script` (a function body; `arguments` holds `args`) in the page; its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Save a full-page screenshot of the current screen at each of [`VIEWPORTS`] as
    /// `target/screenshots/<name>-<viewport>.png`; checks that nothing is wider than a phone.
    pub async fn screenshots(&self, name: &str) -> anyhow::Result<()> {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        for (label, w, h) in VIEWPORTS {
            self.set_viewport(w, h).await?;
            let height = self
                .js("return document.documentElement.scrollHeight;", vec![])
                .await?
                .as_u64()
                .unwrap_or(h as u64) as u32;
            self.set_viewport(w, height.max(h)).await?;
            let overflow = self
                .js(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                    vec![],
                )
                .await?;
            anyhow::ensure!(
                overflow.as_i64().unwrap_or(0) <= 0,
                "{name} at {label} width ({w} px) scrolls sideways by {overflow} px"
            );
            let png = self.client.screenshot().await?;
            std::fs::write(dir.join(format!("{name}-{label}.png")), png)?;
        }
        let (_, w, h) = VIEWPORTS[0];
        self.set_viewport(w, h).await
    }

    /// Make the page's viewport `w` × `h` CSS pixels (the window is larger by its frame).
    pub async fn set_viewport(&self, w: u32, h: u32) -> anyhow::Result<()> {
        self.client.set_window_size(w, h).await?;
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(w as u64) as u32,
            inner[1].as_u64().unwrap_or(h as u64) as u32,
        );
        if (iw, ih) != (w, h) {
            self.client
                .set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
                .await?;
        }
        Ok(())
    }

    /// axe-core's serious and critical violations on the current screen (WCAG 2.x A/AA
    /// rules and best practices), as `"rule: help (targets)"` lines.
    pub async fn accessibility_violations(&self) -> anyhow::Result<Vec<String>> {
        let axe = std::fs::read_to_string(axe_path()).with_context(|| {
            format!(
                "{} is missing: run npm ci in tests/browser (make test does)",
                axe_path().display()
            )
        })?;
        self.js(&format!("{axe}\nreturn typeof window.axe;"), vec![])
            .await?;
        let found = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, {resultTypes: ["violations"]})
                  .then((r) => done(r.violations
                    .filter((v) => v.impact === "serious" || v.impact === "critical")
                    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`)))
                  .catch((e) => done([`axe failed: ${e}`]));"#,
                vec![],
            )
            .await?;
        Ok(found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("unexpected axe answer {found}")]))
    }

    /// Close the session (the browser quits).
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}

/// Ask `probe` every [`POLL`] until it gives a value or `wait` has passed; the error then
/// is what `probe` said last.
async fn until<T>(
    wait: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + wait;
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(last) => anyhow::ensure!(Instant::now() < deadline, "{last}"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Where screenshots go: `target/screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots")
}

fn axe_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js")
}

/// Wait until chromedriver at `url` says it is ready (`GET /status`, WebDriver §8.3).
async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{url}/status")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                if v["value"]["ready"] == true {
                    return Ok(());
                }
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "chromedriver at {url} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
