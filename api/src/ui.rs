//! Swagger UI at `/v1/ui/`, as the original served it: the assets of swagger-ui-dist 5.35.0
//! (Apache-2.0; `api/assets/swagger-ui/`) embedded in the binary, showing this deployment's
//! `/v1/swagger.json` with "Try it out" against it.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::ApiError;

/// One embedded file: name, media type, bytes.
type Asset = (&'static str, &'static str, &'static [u8]);

const ASSETS: &[Asset] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../assets/swagger-ui/index.html"),
    ),
    (
        "swagger-initializer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/swagger-ui/swagger-initializer.js"),
    ),
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/swagger-ui/swagger-ui.css"),
    ),
    (
        "favicon-32x32.png",
        "image/png",
        include_bytes!("../assets/swagger-ui/favicon-32x32.png"),
    ),
    (
        "LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/swagger-ui/LICENSE"),
    ),
    (
        "NOTICE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/swagger-ui/NOTICE"),
    ),
];

/// Scripts and styles from this origin only (the UI's own inline styles allowed), requests to
/// this origin only, no framing.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                      connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// The page's path: with its `/`, which the assets' relative links need.
pub const PAGE: &str = "/v1/ui/";

/// `GET /v1/ui`: to the page.
pub async fn redirect() -> Redirect {
    Redirect::permanent(PAGE)
}

/// `GET /v1/ui/`: the page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /v1/ui/{file}`: one of the page's assets.
pub async fn asset(Path(file): Path<String>) -> Response {
    serve(&file)
}

fn serve(file: &str) -> Response {
    let Some((_, media_type, bytes)) = ASSETS.iter().find(|(name, ..)| *name == file) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such file of the API's user interface: {file}"),
        )
        .into_response();
    };
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_and_nothing_else() {
        let page = index().await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let js = asset(Path("swagger-ui-bundle.js".into())).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert!(
            js.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        for missing in ["../openapi.json", "swagger-ui-bundle.js.map", ""] {
            let r = asset(Path(missing.into())).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }

    #[test]
    fn the_page_loads_only_embedded_assets() {
        let page = std::str::from_utf8(ASSETS[0].2).unwrap();
        for src in page.split("=\"./").skip(1) {
            let name = &src[..src.find('"').unwrap()];
            assert!(ASSETS.iter().any(|(n, ..)| *n == name), "{name}");
        }
    }
}
