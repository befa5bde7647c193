//! Captured logs for tests that check what reaches them (no secret value ever does).

use std::sync::{Arc, Mutex, OnceLock};

/// Everything the process logged since [`capture`] was first called (formatted, no colour).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The captured text so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }

    /// The captured text so far, emptying the buffer (long runs check it piece by piece).
    pub fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.0.lock().expect("capture lock"));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURE: OnceLock<Captured> = OnceLock::new();

/// Install (once per process) a global subscriber that records every event at `trace` for
/// calsync and `debug` for the libraries (HTTP, AWS SDK), and return its buffer.
pub fn capture() -> Captured {
    capture_filtered("debug,calsync=trace,calsync_e2e=trace")
}

/// [`capture`] with the `EnvFilter` directives `filter` (when this call installs the
/// subscriber; a later call gets the first one's).
pub fn capture_filtered(filter: &str) -> Captured {
    CAPTURE
        .get_or_init(|| {
            let c = Captured::default();
            let writer = c.clone();
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .try_init();
            c
        })
        .clone()
}
