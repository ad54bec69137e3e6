//! The partner portal (issue #29): the page `portal/web/` holds, built into the binary and served
//! on the RPC port at `/` and `/portal/…`. The files hold no data: the page asks the node's
//! JSON-RPC for everything, with the user's token, as any other client. Every answer carries a
//! Content-Security-Policy that lets the page load and call nothing but this node, so that no
//! request leaves its origin (the verifier module, WebAssembly, is compiled by the browser
//! itself: `'wasm-unsafe-eval'`).

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::StatusCode;
use jsonrpsee::server::{HttpBody, HttpResponse};

/// What the page may load and call: only this node.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The portal's files: path, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("../../../portal/web/index.html")),
    ("/portal/app.js", "text/javascript; charset=utf-8", include_bytes!("../../../portal/web/app.js")),
    ("/portal/verify.js", "text/javascript; charset=utf-8", include_bytes!("../../../portal/web/verify.js")),
    ("/portal/charts.js", "text/javascript; charset=utf-8", include_bytes!("../../../portal/web/charts.js")),
    (
        "/portal/interconnect.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../portal/web/interconnect.js"),
    ),
    (
        "/portal/settlement.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../portal/web/settlement.js"),
    ),
    (
        "/portal/operator.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../portal/web/operator.js"),
    ),
    (
        "/portal/reconcile.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../portal/web/reconcile.js"),
    ),
    ("/portal/style.css", "text/css; charset=utf-8", include_bytes!("../../../portal/web/style.css")),
    ("/portal/verifier.wasm", "application/wasm", include_bytes!("../../../portal/web/verifier.wasm")),
    // Front-end packages from npm, copied by scripts/portal-vendor.sh (portal/package-lock.json).
    (
        "/portal/vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../portal/web/vendor/uPlot.iife.min.js"),
    ),
    (
        "/portal/vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../portal/web/vendor/uPlot.min.css"),
    ),
    (
        "/portal/vendor/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../portal/web/vendor/uPlot.LICENSE"),
    ),
];

/// Whether a `GET` of `path` is the portal's (the page, or anything under `/portal/`).
pub(super) fn is_portal(method: &hyper::Method, path: &str) -> bool {
    (method == hyper::Method::GET || method == hyper::Method::HEAD)
        && (path == "/" || path.starts_with("/portal/"))
}

/// The file at `path`, or 404.
pub(super) fn serve(path: &str) -> HttpResponse {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(p, _, _)| *p == path) else {
        let mut response = HttpResponse::new(HttpBody::from(format!("no portal file {path}\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return with_headers(response, "text/plain; charset=utf-8");
    };
    with_headers(HttpResponse::new(HttpBody::from(bytes.to_vec())), content_type)
}

fn with_headers(mut response: HttpResponse, content_type: &'static str) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("content-security-policy", HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // The files change only with the binary: revalidate, never serve a stale page.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_served_with_a_policy_that_allows_only_this_node() {
        for (path, content_type, _) in FILES {
            let response = serve(path);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[CONTENT_TYPE], *content_type);
            let policy = response.headers()["content-security-policy"].to_str().unwrap_or_default();
            assert!(
                policy.starts_with("default-src 'none'") && policy.contains("connect-src 'self'"),
                "{policy}"
            );
        }
        assert_eq!(serve("/portal/../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert!(is_portal(&hyper::Method::GET, "/") && !is_portal(&hyper::Method::POST, "/"));
        assert!(!is_portal(&hyper::Method::GET, "/ingest/cdrs"));
    }

    /// The licence banner a vendored file opens with (`/*! https://github.com/… */`): a name, not a
    /// request.
    fn without_banner(text: &str) -> &str {
        match text.strip_prefix("/*!").and_then(|rest| rest.split_once("*/")) {
            Some((_, after)) => after,
            None => text,
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for (path, _, bytes) in FILES.iter().filter(|(p, _, _)| !p.ends_with(".wasm")) {
            let text = String::from_utf8_lossy(bytes);
            let text = without_banner(&text);
            assert!(!text.contains("http://") && !text.contains("https://"), "{path} names another origin");
        }
    }
}
