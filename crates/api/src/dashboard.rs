//! The dashboard every node serves at `/`: one HTML page, its script and style sheet, and the
//! vendored charting library (uPlot, with its licence), all compiled into the binary.
//!
//! The page is a small client of the public API: it reads the same routes as any other client
//! (`/v1/status`, `/v1/providers`, `/v1/jobs/{id}`, `/v1/events`, ...) and asks for pages of
//! bounded size, so the dashboard can show nothing the API does not and needs no server state
//! of its own. See ARCHITECTURE.md, "The dashboard", for why it is built this way.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use crate::ApiError;

/// The media types the dashboard's files are served as (the OpenAPI document names them).
pub(crate) const HTML: &str = "text/html; charset=utf-8";
pub(crate) const JS: &str = "text/javascript; charset=utf-8";
pub(crate) const CSS: &str = "text/css; charset=utf-8";
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

/// `(name, media type, bytes)` of each file named, from the crate's `dashboard/` directory.
macro_rules! embed {
    ($($name:literal: $media_type:expr),* $(,)?) => {
        &[$(($name, $media_type, include_bytes!(concat!("../dashboard/", $name)))),*]
    };
}

/// Everything under `/dashboard/`.
const ASSETS: &[(&str, &str, &[u8])] = embed![
    "dashboard.js": JS,
    "dashboard.css": CSS,
    "uPlot.iife.min.js": JS,
    "uPlot.min.css": CSS,
    "uPlot.LICENSE": TEXT,
];

const INDEX: &[u8] = include_bytes!("../dashboard/index.html");

/// The page's scripts come only from this node and it talks only to this node: a script
/// injected through data the page shows (an app's name, say) could not run or call out.
/// uPlot sizes its elements through inline styles, hence `'unsafe-inline'` for styles only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; connect-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's page.
pub(crate) fn index() -> Response {
    embedded(HTML, INDEX)
}

/// The embedded file `name`, or 404.
pub(crate) fn asset(name: &str) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, media_type, bytes)| embedded(media_type, bytes))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "dashboard file {:?}",
                name.chars().take(80).collect::<String>()
            ))
        })
}

/// `bytes` as `media_type`, revalidated on every load (the files change with the binary, and
/// they are small) and never sniffed as anything else.
fn embedded(media_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_files_the_node_serves() {
        let page = std::str::from_utf8(INDEX).expect("the page is UTF-8");
        let named: Vec<&str> = page
            .split("/dashboard/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or_default())
            .collect();
        assert!(!named.is_empty(), "the page loads its script and styles");
        for name in named {
            assert!(asset(name).is_ok(), "{name} is not embedded");
        }
    }

    #[test]
    fn every_file_is_served_as_its_type_and_confined_to_this_node() {
        let responses = std::iter::once(index()).chain(
            ASSETS
                .iter()
                .map(|(name, _, _)| asset(name).expect("embedded")),
        );
        for response in responses {
            let headers = response.headers();
            let media_type = headers[header::CONTENT_TYPE].to_str().expect("ASCII");
            assert!([HTML, JS, CSS, TEXT].contains(&media_type), "{media_type}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let policy = headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("ASCII");
            assert!(policy.contains("script-src 'self';"), "{policy}");
            assert!(policy.contains("connect-src 'self';"), "{policy}");
        }
    }

    #[test]
    fn an_unknown_file_is_not_found() {
        let Err(err) = asset("../Cargo.toml") else {
            panic!("a file outside the dashboard was served")
        };
        assert_eq!(err.code(), "not_found");
    }
}
