//! Outbound HTTP for addresses that users or remote servers supply (ICS feeds, CalDAV
//! servers and the hrefs they return): every request goes through one policy.
//!
//! - **Addresses**: only globally routable ones. Refused: loopback, RFC 1918, link-local
//!   (incl. the metadata service 169.254.169.254), CGNAT 100.64/10, benchmarking, documentation
//!   and reserved ranges, multicast, unspecified, IPv6 ULA fc00::/7, link-local fe80::/10,
//!   and IPv4-mapped / NAT64 forms of any of these. Names are resolved by [`GuardedResolver`]
//!   at connect time, so the address checked is the address connected to (DNS rebinding
//!   cannot pass); IP literals are checked by [`check_url`] before sending and on every hop.
//! - **Redirects**: at most 3, each hop checked again, never from https to http
//!   ([`redirect_policy`]).
//! - **Bodies**: read with caps ([`read_capped`]): ICS 10 MB, CalDAV 20 MB, a Google page
//!   50 MB; a larger body is a "too large" error for that link only.
//! - **Exceptions**: `CALSYNC_ALLOW_NETS` (comma-separated CIDRs) admits non-global networks
//!   on purpose: the local stack sets `127.0.0.1/32`, where its own servers listen (moto,
//!   Radicale, Xandikos, emulators, feeds), and nothing else; tests use 127.0.0.2 as the
//!   forbidden target.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Largest ICS feed read (bytes).
pub const ICS_MAX_BYTES: usize = 10 << 20;
/// Largest CalDAV response read (bytes).
pub const CALDAV_MAX_BYTES: usize = 20 << 20;
/// Largest Google API response read (bytes).
pub const GOOGLE_MAX_BYTES: usize = 50 << 20;
/// Redirect hops followed.
pub const MAX_REDIRECTS: usize = 3;

/// Which addresses outbound requests may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// Non-global networks admitted anyway (`CALSYNC_ALLOW_NETS`).
    pub allow: Vec<ipnet::IpNet>,
}

impl NetPolicy {
    /// From `CALSYNC_ALLOW_NETS` (unparsable entries are logged and ignored).
    pub fn from_env() -> Self {
        Self::parse(&std::env::var("CALSYNC_ALLOW_NETS").unwrap_or_default())
    }

    /// From a comma-separated list of CIDRs or addresses.
    pub fn parse(list: &str) -> Self {
        let allow = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let net = s
                    .parse::<ipnet::IpNet>()
                    .ok()
                    .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from));
                if net.is_none() {
                    tracing::warn!(entry = s, "CALSYNC_ALLOW_NETS: not a network, ignored");
                }
                net
            })
            .collect();
        Self { allow }
    }

    /// May a request go to `ip`?
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_global(ip) || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// Is `ip` globally routable (the IANA special-purpose registries' "globally reachable")?
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible and NAT64 (`64:ff9b::/96`) addresses are
/// judged by the IPv4 address they carry.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_global_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return is_global_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // ULA fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::a.b.c.d (deprecated)
        }
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The host is, or resolves only to, addresses the policy refuses.
    #[error("{host} is not a public address; calsync does not connect to private, loopback or link-local networks")]
    Address {
        /// The host as written in the URL.
        host: String,
    },
    /// Not http(s), or a redirect from https to http.
    #[error("{0}")]
    Scheme(String),
}

/// Check a URL before sending: http(s) only, and an IP-literal host must be permitted (names
/// are checked when they resolve, by [`GuardedResolver`]).
///
/// Errors: [`Refused`].
pub fn check_url(policy: &NetPolicy, url: &reqwest::Url) -> Result<(), Refused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Scheme(format!(
            "{}: only http and https are fetched",
            url.scheme()
        )));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(d)) => d.parse::<IpAddr>().ok(),
        None => return Err(Refused::Scheme("the URL has no host".into())),
    };
    match ip {
        Some(ip) if !policy.permits(ip) => Err(Refused::Address {
            host: url.host_str().unwrap_or("").to_string(),
        }),
        _ => Ok(()),
    }
}

/// The redirect rule of every calsync HTTP client: at most [`MAX_REDIRECTS`] hops, each
/// checked with [`check_url`], and never from https to http.
pub fn redirect_policy(policy: Arc<NetPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(Refused::Scheme(format!(
                "more than {MAX_REDIRECTS} redirects"
            )));
        }
        let downgrade = attempt
            .previous()
            .last()
            .is_some_and(|p| p.scheme() == "https")
            && attempt.url().scheme() == "http";
        if downgrade {
            return attempt.error(Refused::Scheme(
                "a redirect from https to http was refused".into(),
            ));
        }
        match check_url(&policy, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

/// DNS resolution that keeps only the addresses the policy permits (the connection then goes
/// to one of those), and fails when none is left.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<NetPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<NetPolicy>) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(Refused::Address { host });
                return Err(e);
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// The policy of the last [`guarded_client`] built in this process: IP-literal URLs never
/// reach the resolver, so the providers check the URLs they are given against it
/// ([`check_address`]). A process builds its clients from one configuration.
static ACTIVE: std::sync::RwLock<Option<Arc<NetPolicy>>> = std::sync::RwLock::new(None);

/// Check a user-supplied URL against the process's policy ([`check_url`]; the default
/// policy, public addresses only, when no client was built yet).
///
/// Errors: [`Refused`].
pub fn check_address(url: &reqwest::Url) -> Result<(), Refused> {
    let active = ACTIVE
        .read()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_default();
    check_url(&active, url)
}

/// Make ring rustls's process-wide crypto provider, once; later calls do nothing. reqwest
/// is built without a provider of its own (`rustls-no-provider`) and takes this one, and so
/// does any rustls client config made without an explicit provider. Called by
/// [`guarded_client_with_timeout`] and [`aws_http_client`]; call it before building any
/// other reqwest client.
pub fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only when another provider was installed first, which then serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The HTTP client for the AWS SDK clients: the SDK's own hyper client
/// (`aws-smithy-http-client`) with rustls on ring, the crypto library reqwest uses too, in
/// place of the default one on aws-lc (one crypto library linked, not two). Trusted roots:
/// the platform's (`rustls-native-certs`), as the default client's.
pub fn aws_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    install_tls();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Time a request may take, connection to last body byte ([`guarded_client`]); one that
/// takes longer fails as a transport error, which the adapters retry.
pub const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A reqwest client enforcing `policy` (resolver, redirects) with the [`HTTP_TIMEOUT`].
///
/// Panics only when the TLS backend cannot initialise (at cold start, before any input).
pub fn guarded_client(policy: NetPolicy) -> reqwest::Client {
    guarded_client_with_timeout(policy, HTTP_TIMEOUT)
}

/// [`guarded_client`] with another `timeout` (the fault schedules use a short one, so that a
/// stalled answer times out quickly).
///
/// Panics only when the TLS backend cannot initialise (at cold start, before any input).
#[allow(clippy::expect_used)] // audited: static configuration, no input reaches it
pub fn guarded_client_with_timeout(
    policy: NetPolicy,
    timeout: std::time::Duration,
) -> reqwest::Client {
    install_tls();
    let policy = Arc::new(policy);
    if let Ok(mut g) = ACTIVE.write() {
        *g = Some(policy.clone());
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("calsync/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
        .redirect(redirect_policy(policy))
        .build()
        .expect("static HTTP client configuration")
}

/// Was this reqwest error a refusal of the policy (address or redirect)?
pub fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        src = s.source();
    }
    None
}

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
    // The announced length (already checked against the cap) in one allocation, not a
    // doubling copy per chunk; at most 1 MiB ahead of what has arrived, so an announced
    // length alone holds little memory.
    let announced = resp.content_length().map_or(0, |l| l.min(1 << 20) as usize);
    let mut out = Vec::with_capacity(announced);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_addresses_are_global() {
        let refused = [
            "127.0.0.1",
            "127.0.0.2",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "ff02::1",
        ];
        for a in refused {
            assert!(!is_global(a.parse().unwrap()), "{a} taken for global");
        }
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "17.253.144.10",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "100.128.0.1",
        ] {
            assert!(is_global(a.parse().unwrap()), "{a} refused");
        }
    }

    #[test]
    fn the_allow_list_admits_exactly_its_networks() {
        let p = NetPolicy::parse("127.0.0.1/32, 10.9.0.0/16, bogus");
        assert_eq!(p.allow.len(), 2);
        assert!(p.permits("127.0.0.1".parse().unwrap()));
        assert!(!p.permits("127.0.0.2".parse().unwrap()));
        assert!(p.permits("10.9.3.4".parse().unwrap()));
        assert!(!p.permits("10.8.0.1".parse().unwrap()));
        assert!(NetPolicy::default().permits("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn urls_are_checked_by_scheme_and_literal_host() {
        let p = NetPolicy::parse("127.0.0.1/32");
        let ok = |u: &str| check_url(&p, &reqwest::Url::parse(u).unwrap());
        assert!(ok("https://calendar.example.com/feed.ics").is_ok());
        assert!(ok("http://127.0.0.1:5232/alice/").is_ok());
        assert!(ok("http://127.0.0.2:5232/").is_err());
        assert!(ok("http://[::1]/").is_err());
        assert!(ok("http://169.254.169.254/latest/meta-data/").is_err());
        assert!(ok("http://[::ffff:a9fe:a9fe]/").is_err());
        assert!(ok("file:///etc/passwd").is_err());
    }
}
