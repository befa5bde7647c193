//! Captured logs for tests that check what reaches them (no secret value ever does).

use std::sync::{Arc, Mutex, OnceLock};

/// The buffer the subscriber writes to (formatted, no colour).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

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

type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The process's one subscriber: its buffer and the handle that sets what it records
/// (nothing, between captures).
static SUBSCRIBER: OnceLock<(Captured, Option<FilterHandle>)> = OnceLock::new();

/// A capture in progress: what the process logs from [`capture_filtered`] until this is
/// dropped, when recording stops (the integration tests share one process, and a suite that
/// does not look at the logs should not pay for them). One capture at a time.
pub struct Capture(Captured);

impl Capture {
    /// The captured text so far.
    pub fn text(&self) -> String {
        self.0.text()
    }

    /// The captured text so far, emptying the buffer (long runs check it piece by piece).
    pub fn take(&self) -> String {
        self.0.take()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some((_, Some(handle))) = SUBSCRIBER.get() {
            let _ = handle.reload(tracing_subscriber::EnvFilter::new("off"));
        }
        self.0.take();
    }
}

/// Record every event at `trace` for calsync and `debug` for the libraries (HTTP, AWS SDK)
/// until the returned [`Capture`] is dropped.
pub fn capture() -> Capture {
    capture_filtered("debug,calsync=trace,calsync_e2e=trace")
}

/// [`capture`] with the `EnvFilter` directives `filter`. The first call installs the
/// process's global subscriber; when another subscriber was installed first, nothing is
/// captured (and a check that needs the logs says so).
pub fn capture_filtered(filter: &str) -> Capture {
    use tracing_subscriber::layer::SubscriberExt;
    let (buffer, handle) = SUBSCRIBER.get_or_init(|| {
        let c = Captured::default();
        let writer = c.clone();
        let (layer, handle) =
            tracing_subscriber::reload::Layer::new(tracing_subscriber::EnvFilter::new("off"));
        let subscriber = tracing_subscriber::registry().with(layer).with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false),
        );
        let installed = tracing::subscriber::set_global_default(subscriber).is_ok();
        (c, installed.then_some(handle))
    });
    buffer.take();
    if let Some(handle) = handle {
        let _ = handle.reload(tracing_subscriber::EnvFilter::new(filter));
    }
    Capture(buffer.clone())
}
