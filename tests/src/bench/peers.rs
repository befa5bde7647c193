//! What calsync is measured against in `make bench`: the floor (a plain sequential PUT loop
//! into an empty calendar) and vdirsyncer (the peer, from the project virtualenv), on the
//! same servers and the same generated calendar; and the process CPU clock both are read by.

use std::time::{Duration, Instant};

use calsync::config::Ctx;

use crate::fixtures::{self, Server, PASSWORD, USER};

/// The generated calendar: `n` events, every tenth a weekly series (with an EXDATE), all in
/// `TZID=Europe/Berlin` with its VTIMEZONE, summaries and descriptions in non-ASCII text.
pub fn generated_event(i: usize) -> String {
    let day = 1 + (i % 28);
    let month = 1 + (i / 28) % 12;
    let hour = 8 + (i % 9);
    let start = format!("2027{month:02}{day:02}T{hour:02}0000");
    let end = format!("2027{month:02}{day:02}T{hour:02}4500");
    let recur = if i.is_multiple_of(10) {
        format!(
            "RRULE:FREQ=WEEKLY;COUNT=20\r\nEXDATE;TZID=Europe/Berlin:2027{:02}{day:02}T{hour:02}0000\r\n",
            1 + (month % 12)
        )
    } else {
        String::new()
    };
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync bench//EN\r\n{VTIMEZONE}BEGIN:VEVENT\r\n\
UID:bench-{i}@calsync.example\r\nDTSTAMP:20260101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:{start}\r\nDTEND;TZID=Europe/Berlin:{end}\r\n{recur}\
SUMMARY:Besprechung Nr. {i} – Café Größe ☕\r\nLOCATION:Zürich\\, Bahnhofstraße {i}\r\n\
DESCRIPTION:Événement généré n° {i}: ÄÖÜ äöü ß – 日本語\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Europe/Berlin since 1996 (RFC 5545 §3.6.5).
const VTIMEZONE: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\n\
TZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n\
END:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n\
DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

/// CPU time (user + system) of this process, or of its waited-for children, from
/// `/proc/self/stat` (fields 14–17, in clock ticks; Linux's `USER_HZ` is 100).
///
/// Errors: no `/proc` (not Linux).
pub fn cpu_time(children: bool) -> anyhow::Result<Duration> {
    cpu_time_at("/proc/self/stat", children)
}

/// [`cpu_time`] of the process whose `stat` file is `path` (`/proc/{pid}/stat`).
///
/// Errors: the file is unreadable.
pub fn cpu_time_at(path: &str, children: bool) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(path)?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unreadable /proc/self/stat"))?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // After ")": state (3), then ppid (4) …; utime is field 14, i.e. index 14 - 4 here.
    let at = |field: usize| fields.get(field - 4).copied().unwrap_or(0);
    let ticks = if children {
        at(16) + at(17)
    } else {
        at(14) + at(15)
    };
    Ok(Duration::from_millis(ticks * 10))
}

/// CPU time of the local stack's servers (moto, Radicale, Xandikos), read from the pid files
/// `infra/local/stack.sh` writes (`CALSYNC_LOCAL_DIR`, default `.local`): on a 2-core
/// machine, what the servers spend is time the others wait for.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServersCpu {
    /// moto (DynamoDB, SQS, Secrets Manager).
    pub moto: Duration,
    /// Radicale.
    pub radicale: Duration,
    /// Xandikos.
    pub xandikos: Duration,
}

impl ServersCpu {
    /// Now; a server whose pid file or process is gone counts zero.
    pub fn now() -> Self {
        let dir = std::env::var("CALSYNC_LOCAL_DIR").unwrap_or_else(|_| ".local".into());
        let of = |name: &str| {
            std::fs::read_to_string(format!("{dir}/{name}.pid"))
                .ok()
                .and_then(|pid| cpu_time_at(&format!("/proc/{}/stat", pid.trim()), false).ok())
                .unwrap_or_default()
        };
        Self {
            moto: of("moto"),
            radicale: of("radicale"),
            xandikos: of("xandikos"),
        }
    }

    /// What each spent since `earlier`, as `moto 1.2 s, Radicale 0.3 s, Xandikos 30.1 s`.
    pub fn since(&self, earlier: &ServersCpu) -> String {
        format!(
            "moto {:.2} s, Radicale {:.2} s, Xandikos {:.2} s",
            self.moto.saturating_sub(earlier.moto).as_secs_f64(),
            self.radicale.saturating_sub(earlier.radicale).as_secs_f64(),
            self.xandikos.saturating_sub(earlier.xandikos).as_secs_f64()
        )
    }
}

/// The floor: PUT every generated event, one after the other, into the empty calendar
/// `target` (what any sync into an empty calendar must at least do). Returns the wall time.
///
/// Errors: a PUT failed.
pub async fn put_loop(target: &str, n: usize) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    let base = reqwest::Url::parse(&format!("{}/", target.trim_end_matches('/')))?;
    let t = Instant::now();
    for i in 0..n {
        let url = base.join(&format!("floor-{i}.ics"))?;
        let r = http
            .put(url)
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "text/calendar; charset=utf-8")
            .header("if-none-match", "*")
            .body(generated_event(i))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "floor PUT {i}: {}", r.status());
    }
    Ok(t.elapsed())
}

/// vdirsyncer (`.venv/bin/vdirsyncer`, or `VDIRSYNCER`) configured with one pair from
/// `source` to `target`, both CalDAV collections, status in a temporary folder.
pub struct Vdirsyncer {
    bin: String,
    config: std::path::PathBuf,
    dir: std::path::PathBuf,
}

/// One vdirsyncer run: wall and CPU time (its own, as a waited-for child).
pub struct PeerRun {
    pub wall: Duration,
    pub cpu: Duration,
}

impl Vdirsyncer {
    /// Configure it, or `None` (with the reason printed) when it is not installed.
    ///
    /// Errors: the temporary folder cannot be written.
    pub fn new(source: &str, target: &str) -> anyhow::Result<Option<Self>> {
        let bin = std::env::var("VDIRSYNCER").unwrap_or_else(|_| ".venv/bin/vdirsyncer".into());
        if !std::path::Path::new(&bin).exists() {
            println!(
                "vdirsyncer: not found at {bin} (make venv installs it); its column stays empty"
            );
            return Ok(None);
        }
        let dir = std::env::temp_dir().join(format!("calsync-bench-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("config");
        std::fs::write(
            &config,
            format!(
                "[general]\nstatus_path = \"{status}/\"\n\n[pair bench]\na = \"src\"\nb = \"dst\"\n\
collections = null\nconflict_resolution = \"a wins\"\n\n[storage src]\ntype = \"caldav\"\n\
url = \"{source}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n[storage dst]\n\
type = \"caldav\"\nurl = \"{target}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
                status = dir.join("status").display()
            ),
        )?;
        let v = Self { bin, config, dir };
        v.run(&["discover"])?;
        Ok(Some(v))
    }

    /// `vdirsyncer sync`.
    ///
    /// Errors: it failed.
    pub fn sync(&self) -> anyhow::Result<PeerRun> {
        self.run(&["sync"])
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<PeerRun> {
        let cpu0 = cpu_time(true)?;
        let t = Instant::now();
        let out = std::process::Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()?;
        let wall = t.elapsed();
        anyhow::ensure!(
            out.status.success(),
            "vdirsyncer {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(PeerRun {
            wall,
            cpu: cpu_time(true)?.saturating_sub(cpu0),
        })
    }
}

impl Drop for Vdirsyncer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The floor's first PUT loop and vdirsyncer's syncs, before calsync's (`bench::caldav`).
pub struct FirstPeers {
    pub floor_first: f64,
    /// The CPU of this process during the floor's loop (seconds).
    pub floor_cpu: f64,
    pub floor_servers: String,
    /// Xandikos's CPU during the floor's loop (seconds).
    pub floor_xandikos: f64,
    pub peer: Option<Vdirsyncer>,
    pub peer_initial: Option<PeerRun>,
    pub peer_quiet: Option<PeerRun>,
    pub peer_servers: String,
    pub peer_xandikos: f64,
}

/// The floor's PUT loop into a new Xandikos calendar, then vdirsyncer's initial and
/// no-change syncs from `src` into another.
pub async fn floor_then_peer(
    ctx: &Ctx,
    src: &str,
    tag: &str,
    n: usize,
) -> anyhow::Result<FirstPeers> {
    let floor_dst = fixtures::new_calendar(ctx, Server::Xandikos, &format!("{tag}-floor")).await?;
    let servers = ServersCpu::now();
    let floor_cpu0 = cpu_time(false)?;
    let floor_first = put_loop(&floor_dst, n).await?.as_secs_f64();
    // The PUT loop runs in this process, on the same HTTP stack (reqwest, hyper): its CPU
    // is what the N PUTs alone cost, the floor under any engine's CPU.
    let floor_cpu = cpu_time(false)?.saturating_sub(floor_cpu0).as_secs_f64();
    let floor_servers_now = ServersCpu::now();
    let floor_servers = floor_servers_now.since(&servers);
    let floor_xandikos = xandikos_secs(&servers, &floor_servers_now);

    let peer_dst = fixtures::new_calendar(ctx, Server::Xandikos, &format!("{tag}-vds")).await?;
    let peer = Vdirsyncer::new(src, &peer_dst)?;
    let servers = ServersCpu::now();
    let peer_initial = peer.as_ref().map(Vdirsyncer::sync).transpose()?;
    let peer_servers_now = ServersCpu::now();
    let peer_quiet = peer.as_ref().map(Vdirsyncer::sync).transpose()?;
    Ok(FirstPeers {
        floor_first,
        floor_cpu,
        floor_servers,
        floor_xandikos,
        peer,
        peer_initial,
        peer_quiet,
        peer_servers: peer_servers_now.since(&servers),
        peer_xandikos: xandikos_secs(&servers, &peer_servers_now),
    })
}

/// The floor measured twice ([`floor_again`]).
pub struct Floor {
    /// The mean of the two loops' walls (seconds).
    pub wall: f64,
    /// Both loops' wall per second of Xandikos CPU.
    pub per_xandikos: f64,
}

/// The floor's second PUT loop, after calsync's sync, and the mean of the two.
pub async fn floor_again(
    ctx: &Ctx,
    tag: &str,
    n: usize,
    first: &FirstPeers,
) -> anyhow::Result<Floor> {
    let floor_dst = fixtures::new_calendar(ctx, Server::Xandikos, &format!("{tag}-floor2")).await?;
    let servers = ServersCpu::now();
    let again = put_loop(&floor_dst, n).await?.as_secs_f64();
    let xandikos = first.floor_xandikos + xandikos_secs(&servers, &ServersCpu::now());
    let wall = (first.floor_first + again) / 2.0;
    println!(
        "floor (PUT loop): {:.2} s first, {again:.2} s again after calsync; the ratios use their mean, {wall:.2} s",
        first.floor_first
    );
    Ok(Floor {
        wall,
        per_xandikos: (first.floor_first + again) / xandikos.max(0.01),
    })
}

/// Xandikos's CPU seconds between two readings.
pub fn xandikos_secs(earlier: &ServersCpu, later: &ServersCpu) -> f64 {
    later
        .xandikos
        .saturating_sub(earlier.xandikos)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_calendar_parses_with_its_series_and_text() {
        let s = calsync::ical::EventSeries::parse_single("b", &generated_event(10)).expect("parse");
        assert!(s.summary().contains("Größe ☕"), "{}", s.summary());
        let plain =
            calsync::ical::EventSeries::parse_single("b", &generated_event(11)).expect("parse");
        assert_ne!(s.uid, plain.uid);
        assert!(generated_event(10).contains("RRULE:FREQ=WEEKLY"));
        assert!(!generated_event(11).contains("RRULE:FREQ=WEEKLY"));
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_time(false).expect("cpu");
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_time(false).expect("cpu") > before);
    }
}
