//! The bundled web UI: static files from `ui/`, embedded in the binary, so that `aetr server`
//! serves it with nothing else installed. The single-page app's `index.html` answers every
//! page a user may bookmark (`/`, `/steps`, `/steps/{id}`, `/runs`, `/runs/{id}`,
//! `/schedules`, `/pools`); its scripts, styles and vendored libraries are under `/ui/`.
//!
//! Every answer carries a Content-Security-Policy that allows no inline script and no other
//! origin, `X-Content-Type-Options: nosniff` and `frame-ancestors 'none'`. Vendored files
//! have their version in their path and are cached for a year; the app's own files are
//! revalidated with an ETag on every load.
//!
//! For work on the UI, `AETR_UI_DIR` (a path to `ui/`) serves the same files from that folder,
//! read on every request, so that an edit shows on a reload without a rebuild. New files must
//! still be listed in [`ASSETS`].

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::http::ApiError;

/// One embedded file.
struct Asset {
    /// Its path under `/ui/`.
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", CSS),
    asset!("graph.css", CSS),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/main.mjs", JS),
    asset!("js/api.mjs", JS),
    asset!("js/dom.mjs", JS),
    asset!("js/format.mjs", JS),
    asset!("js/forms.mjs", JS),
    asset!("js/token.mjs", JS),
    asset!("js/code-editor.mjs", JS),
    asset!("js/step-editor.mjs", JS),
    asset!("js/virtual-list.mjs", JS),
    asset!("js/run-tree.mjs", JS),
    asset!("js/node-panel.mjs", JS),
    asset!("js/run-header.mjs", JS),
    asset!("js/run-rows.mjs", JS),
    asset!("js/run-history.mjs", JS),
    asset!("js/graph-layout.mjs", JS),
    asset!("js/graph-view.mjs", JS),
    asset!("js/script-try.mjs", JS),
    asset!("js/pages/steps.mjs", JS),
    asset!("js/pages/step.mjs", JS),
    asset!("js/pages/runs.mjs", JS),
    asset!("js/pages/run.mjs", JS),
    asset!("js/pages/schedules.mjs", JS),
    asset!("js/pages/pools.mjs", JS),
    asset!("vendor/codemirror-5.65.21/codemirror.js", JS),
    asset!("vendor/codemirror-5.65.21/javascript.js", JS),
    asset!("vendor/codemirror-5.65.21/codemirror.css", CSS),
    asset!("vendor/codemirror-5.65.21/LICENSE", "text/plain; charset=utf-8"),
];

/// No inline script, nothing from another origin, never in a frame.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The pages of the single-page app.
const PAGES: &[&str] =
    &["/", "/steps", "/steps/{id}", "/runs", "/runs/{id}", "/schedules", "/pools"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    for page in PAGES {
        cfg.service(web::resource(*page).route(web::get().to(index)));
    }
    cfg.service(web::resource("/ui/{path:.*}").route(web::get().to(file)));
}

/// Each asset's ETag: a hash of its bytes, computed once.
static ETAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| etag_of(a.bytes)).collect());

/// `AETR_UI_DIR`: serve the files from this folder instead (see the module's docs).
static UI_DIR: LazyLock<Option<PathBuf>> =
    LazyLock::new(|| std::env::var_os("AETR_UI_DIR").filter(|d| !d.is_empty()).map(PathBuf::from));

fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html").unwrap_or_else(|| HttpResponse::NotFound().finish())
}

async fn file(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&req, &path).ok_or_else(|| ApiError::NotFound(format!("no such file: /ui/{path}")))
}

fn serve(req: &HttpRequest, path: &str) -> Option<HttpResponse> {
    let i = ASSETS.iter().position(|a| a.path == path)?;
    let asset = &ASSETS[i];
    let (bytes, etag): (Cow<'static, [u8]>, Cow<'static, str>) = match UI_DIR.as_deref() {
        Some(dir) => {
            let bytes = std::fs::read(dir.join(asset.path)).ok()?;
            let etag = etag_of(&bytes);
            (bytes.into(), etag.into())
        }
        None => (asset.bytes.into(), ETAGS[i].as_str().into()),
    };
    let cache = if path.starts_with("vendor/") && UI_DIR.is_none() {
        // The version is in the path.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag.as_ref()))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")));
    if fresh {
        return Some(response.finish());
    }
    Some(response.content_type(asset.content_type).body(bytes))
}
