//! Requests a web browser makes on a page's behalf (review M4). The RPC port serves no web pages
//! of other sites, and a loopback node without a token must not take CDRs from a page that
//! happens to be open on the same machine:
//! - a request carrying an `Origin` other than the node's own (the `Host` it was sent to) is
//!   refused: browsers send `Origin` with every cross-site POST and WebSocket handshake, and
//!   switches, the CLI and `curl` send none;
//! - on a node listening on loopback without a token, a request addressed (`Host`) to anything
//!   but `localhost`, `127.0.0.1` or `[::1]` is refused: a page's own name pointed at 127.0.0.1
//!   (DNS rebinding) would otherwise make its requests "same-origin". With a token the Host is
//!   not judged (a reverse proxy in front of a loopback node may pass its public name); the
//!   token is what guards writes.

use hyper::header::{HeaderMap, HOST, ORIGIN};

/// Why a request was refused, for the 403 answer.
/// `listens_on_loopback`: on loopback and without a token.
pub(super) fn refusal(listens_on_loopback: bool, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).map(str::trim);
    if listens_on_loopback {
        if let Some(host) = host.filter(|h| !is_loopback_host(h)) {
            return Some(format!(
                "Host `{}` refused: this node listens on loopback and answers only requests addressed to \
                 localhost, 127.0.0.1 or [::1]",
                excerpt(host)
            ));
        }
    }
    let origin = headers.get(ORIGIN)?;
    let origin = origin.to_str().unwrap_or("(not text)").trim();
    let same = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
    if same.is_some_and(|authority| host.is_some_and(|h| authority.eq_ignore_ascii_case(h))) {
        return None;
    }
    Some(format!(
        "cross-origin request from `{}` refused: the node's RPC and ingest take no requests from other sites' web pages",
        excerpt(origin)
    ))
}

/// Whether `host` (a `Host` header: name or address, with an optional port) names this machine's
/// loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:9944 or [::1]
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// At most 80 characters of a header value, for an answer.
fn excerpt(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(host: Option<&'static str>, origin: Option<&'static str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(host) = host {
            map.insert(HOST, HeaderValue::from_static(host));
        }
        if let Some(origin) = origin {
            map.insert(ORIGIN, HeaderValue::from_static(origin));
        }
        map
    }

    #[test]
    fn clients_without_an_origin_pass_on_loopback_names() {
        for host in ["127.0.0.1:9944", "localhost:9944", "LOCALHOST", "[::1]:9944", "[::1]", "127.0.0.2"] {
            assert_eq!(refusal(true, &headers(Some(host), None)), None, "{host}");
        }
        // No Host at all (HTTP/1.0): nothing to judge.
        assert_eq!(refusal(true, &headers(None, None)), None);
    }

    #[test]
    fn a_foreign_host_is_refused_on_loopback_only() {
        let rebinding = headers(Some("evil.example:9944"), Some("http://evil.example:9944"));
        assert!(refusal(true, &rebinding).is_some_and(|why| why.contains("evil.example")));
        // Beyond loopback the name is the operator's business (tokens guard it), and a page of
        // the node's own origin is same-origin.
        assert_eq!(refusal(false, &rebinding), None);
        assert_eq!(refusal(false, &headers(Some("node.example.net:9944"), None)), None);
    }

    #[test]
    fn another_sites_origin_is_refused_and_the_nodes_own_is_not() {
        let cross = headers(Some("127.0.0.1:9944"), Some("https://evil.example"));
        assert!(refusal(true, &cross).is_some_and(|why| why.contains("cross-origin")));
        assert!(
            refusal(false, &headers(Some("node.example.net:9944"), Some("https://evil.example"))).is_some()
        );
        assert!(refusal(true, &headers(Some("127.0.0.1:9944"), Some("null"))).is_some());
        let own = headers(Some("127.0.0.1:9944"), Some("http://127.0.0.1:9944"));
        assert_eq!(refusal(true, &own), None);
        // Same host, another port: another origin.
        assert!(refusal(true, &headers(Some("127.0.0.1:9944"), Some("http://127.0.0.1:8080"))).is_some());
    }
}
