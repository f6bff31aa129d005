//! The UI's files: the app's page at every bookmarkable URL, its scripts and styles, security
//! headers, caching, and API 404s that stay JSON.

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use crate::support::TestApp;

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http.get(app.url(path)).send().await.expect("aetr answers")
}

#[tokio::test]
async fn every_page_a_user_can_bookmark_is_the_app_with_a_strict_content_security_policy() {
    let app = TestApp::spawn().await;
    let run = "0190a0b0-0000-7000-8000-000000000000";
    for path in [
        "/",
        "/steps",
        "/steps/some-id",
        "/runs",
        &format!("/runs/{run}?node=x"),
        "/schedules",
        "/pools",
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
        let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains(r#"<script type="module" src="/ui/js/main.mjs">"#), "{path}");
        // No inline script: every <script> has a src.
        assert_eq!(body.matches("<script").count(), body.matches("<script src=").count() + 1);
    }
}

#[tokio::test]
async fn scripts_are_revalidated_and_vendored_libraries_cached_for_a_year() {
    let app = TestApp::spawn().await;
    let script = get(&app, "/ui/js/main.mjs").await;
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(script.headers()[CACHE_CONTROL], "no-cache");
    let etag = script.headers()[ETAG].clone();
    let again =
        app.http.get(app.url("/ui/js/main.mjs")).header(IF_NONE_MATCH, etag).send().await.unwrap();
    assert_eq!(again.status(), 304);

    let vendored = get(&app, "/ui/vendor/codemirror-5.65.21/codemirror.js").await;
    assert_eq!(vendored.status(), 200);
    assert_eq!(vendored.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    let css = get(&app, "/ui/app.css").await;
    assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.headers().contains_key(CONTENT_SECURITY_POLICY));
}

#[tokio::test]
async fn unknown_files_and_api_paths_are_json_404s() {
    let app = TestApp::spawn().await;
    let missing = app.get("/ui/js/nothing.mjs").await.expect(404);
    assert_eq!(missing.errors(), ["no such file: /ui/js/nothing.mjs"]);
    let api = app.get("/api/v1/nothing").await.expect(404);
    assert_eq!(api.errors(), ["no such endpoint: GET /api/v1/nothing"]);
    app.get("/steps/a/b").await.expect(404);
}
