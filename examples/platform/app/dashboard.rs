//! `GET /dashboard`: the live dashboard, one HTML page with its stylesheet and script,
//! embedded in the binary (no build step, no CDN, nothing fetched from elsewhere).
//!
//! The page holds no data, so it is served without a key; it asks for one (from the URL
//! fragment `#token=KEY` or a form), keeps it in the tab's sessionStorage, and sends it
//! as `Authorization: Bearer` on the `/v1` API and as `?token=` on the `/v1/live`
//! WebSocket. The Content-Security-Policy allows only this origin: no inline script, no
//! third-party anything, and no framing.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("../dashboard/index.html");
/// Its stylesheet.
pub const DASHBOARD_CSS: &str = include_str!("../dashboard/dashboard.css");
/// Its script.
pub const DASHBOARD_JS: &str = include_str!("../dashboard/dashboard.js");

/// The page's Content-Security-Policy: same-origin script, style, fetch and WebSocket
/// (`'self'` covers `ws:`/`wss:` to the same host in current browsers; the explicit
/// schemes are for older ones), no plugins, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Embedded in the binary: a new binary is the only way they change, so a browser
    // may keep them for a short while but must check again after that.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60, must-revalidate"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET /dashboard`.
pub async fn page() -> Response {
    let mut r = asset("text/html; charset=utf-8", INDEX_HTML);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// `GET /dashboard/{file}`: the stylesheet and the script.
pub async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "dashboard.css" => asset("text/css; charset=utf-8", DASHBOARD_CSS),
        "dashboard.js" => asset("text/javascript; charset=utf-8", DASHBOARD_JS),
        _ => super::api::error(StatusCode::NOT_FOUND, "no such dashboard file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_same_origin_files() {
        assert!(INDEX_HTML.contains(r#"src="/dashboard/dashboard.js""#));
        assert!(INDEX_HTML.contains(r#"href="/dashboard/dashboard.css""#));
        // No CDN, no inline script (the CSP would block it anyway).
        for text in [INDEX_HTML, DASHBOARD_CSS, DASHBOARD_JS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        assert!(!INDEX_HTML.contains("<script>"));
    }

    #[test]
    fn the_script_speaks_the_live_protocol() {
        // The message types and fields of the `/v1/live` contract the page relies on.
        for needle in [
            "/v1/live?token=",
            r#"type: "subscribe""#,
            r#"type: "stats", on: true"#,
            r#"case "update""#,
            r#"case "stats""#,
            r#"m.kind === "final""#,
            "events_per_s",
            "Authorization: \"Bearer \"",
            "sessionStorage",
            "#token=",
        ] {
            assert!(DASHBOARD_JS.contains(needle), "dashboard.js lacks {needle}");
        }
    }
}
