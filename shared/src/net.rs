//! Outbound HTTP helpers for addresses that users or remote servers supply.

/// A body was larger than its cap.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than `limit` bytes.
    #[error("{what} is too large: more than {limit} bytes")]
    TooLarge {
        /// What was read (`ICS feed`, `JWKS`, …).
        what: &'static str,
        /// The cap in bytes.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("{what}: transport error while reading the body: {detail}")]
    Transport {
        /// What was read.
        what: &'static str,
        /// reqwest's error text, without the URL.
        detail: String,
    },
}

/// Read a response body of at most `limit` bytes, chunk by chunk, stopping as soon as the cap
/// is passed (a `Content-Length` over the cap is refused before reading).
///
/// Errors: [`BodyError::TooLarge`], [`BodyError::Transport`].
pub async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
    what: &'static str,
) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|l| l > limit as u64) {
        return Err(BodyError::TooLarge { what, limit });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| BodyError::Transport {
        what,
        detail: e.without_url().to_string(),
    })? {
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { what, limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
