//! API tokens: every management endpoint and operator action needs one; callbacks never do.

use reqwest::Method;
use serde_json::Value;

use crate::support::{Respond, TestApp, TestService};

const TOKEN: &str = "s3cret-token-for-tests";

/// Every endpoint of the OpenAPI document, with its path parameters filled in.
async fn endpoints(app: &TestApp) -> Vec<(Method, String)> {
    let doc = app.get("/api/v1/openapi.json").await.expect(200).body;
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let filled: String =
            path.split('/')
                .map(|part| {
                    if part.starts_with('{') {
                        "0190a000-0000-7000-8000-000000000001"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
        for method in item.as_object().expect("an item").keys() {
            let method: Method = method.to_uppercase().parse().expect("a method");
            all.push((method, format!("/api/v1{filled}")));
        }
    }
    assert!(all.len() >= 20, "the document lists every endpoint: {all:?}");
    all
}

async fn status(app: &TestApp, method: &Method, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut request = app.http.request(method.clone(), app.url(path));
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    if matches!(*method, Method::POST | Method::PUT) {
        request = request.header("content-type", "application/json").body("{}");
    }
    let response = request.send().await.expect("aetr answers");
    let status = response.status().as_u16();
    if status == 401 {
        let challenge =
            response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{method} {path}");
    }
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn every_endpoint_needs_the_token_except_callbacks_and_the_document() {
    let app = TestApp::spawn_with(&[("AETR_API_TOKENS", &format!("other-token,{TOKEN}"))]).await;
    let open = ["/api/v1/runs/complete", "/api/v1/runs/fail", "/api/v1/openapi.json"];
    for (method, path) in endpoints(&app).await {
        let is_open = open.contains(&path.as_str());
        let bearer = format!("Bearer {TOKEN}");
        for (auth, why) in [
            (None, "no token"),
            (Some("Bearer wrong-token"), "a wrong token"),
            (Some(&bearer[..bearer.len() - 1]), "a prefix of the token"),
            (Some(TOKEN), "a token without its scheme"),
            (Some(&format!("Basic {TOKEN}")[..]), "another scheme"),
        ] {
            let (status, body) = status(&app, &method, &path, auth).await;
            if is_open {
                assert_ne!(status, 401, "{method} {path} with {why}: {body}");
            } else {
                assert_eq!(status, 401, "{method} {path} with {why}: {body}");
                let error = body["errors"][0].as_str().unwrap_or_default();
                assert!(!error.is_empty() && !error.contains(TOKEN), "{error}");
            }
        }
        for auth in [bearer.as_str(), "bearer s3cret-token-for-tests", "Bearer other-token"] {
            let (status, body) = status(&app, &method, &path, Some(auth)).await;
            assert_ne!(status, 401, "{method} {path} with the right token: {body}");
            assert!(status < 500, "{method} {path}: {status} {body}");
        }
    }
    for open in ["/healthz", "/readyz"] {
        assert_eq!(status(&app, &Method::GET, open, None).await.0, 200, "{open}");
    }
}

#[tokio::test]
async fn with_tokens_a_run_goes_end_to_end_and_its_callback_needs_none() {
    let dir = std::env::temp_dir().join(format!("aetr-tokens-{}", uuid::Uuid::new_v4()));
    std::fs::write(&dir, format!("\n{TOKEN}\n  \n")).unwrap();
    let mut app = TestApp::spawn_with(&[("AETR_API_TOKENS_FILE", dir.to_str().unwrap())]).await;
    app.get("/api/v1/steps").await.expect(401);
    app.use_token(TOKEN);
    let svc = TestService::start().await;
    svc.respond("/a", Respond::Hold);
    let tree = crate::runs::api("a", &svc.at("/a"));
    let step = app.put_tree(&tree).await;
    let run = app.start_run(step, serde_json::json!({"n": 1})).await;
    let mut received = svc.next().await;
    received.answer(Respond::Status(202));
    // The service calls back with no Authorization header at all.
    let answer = reqwest::Client::new().post(&received.callback).body("done").send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let root = app.wait_root(run, "Complete").await;
    assert_eq!(root["result"], "done");
    let (_, log) = app.stop("TERM");
    assert!(!log.contains(TOKEN), "the token is never logged:\n{log}");
    std::fs::remove_file(&dir).unwrap();
}

#[tokio::test]
async fn a_server_on_a_public_address_without_tokens_warns_at_start() {
    let mut app = TestApp::spawn_with(&[
        ("AETR_BIND", "0.0.0.0:0"),
        ("AETR_PUBLIC_URL", "http://127.0.0.1:9"),
    ])
    .await;
    let (_, log) = app.stop("TERM");
    assert!(log.contains("not a loopback address, and no API tokens are set"), "{log}");

    let mut quiet = TestApp::spawn().await;
    let (_, log) = quiet.stop("TERM");
    assert!(!log.contains("no API tokens"), "{log}");
}

#[tokio::test]
async fn no_read_endpoint_ever_shows_a_callback_token() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/a", Respond::Hold);
    let step =
        app.put_tree(&crate::runs::seq("t", vec![crate::runs::api("a", &svc.at("/a"))])).await;
    let run = app.start_run(step, serde_json::json!(1)).await;
    let mut received = svc.next().await;
    received.answer(Respond::Status(202));
    let token = received.callback.split("token=").nth(1).expect("a token").to_owned();
    let tree = app
        .wait_until(run, "the action executing", |r| r["children"][0]["state"] == "Executing")
        .await;
    let node = tree["children"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/api/v1/runs/{run}"),
        format!("/api/v1/runs/{run}?depth=0"),
        format!("/api/v1/runs/{run}/nodes/{node}"),
        format!("/api/v1/runs/{run}/nodes/{run}/children"),
        format!("/api/v1/runs/{run}/events"),
        "/api/v1/runs".to_owned(),
        format!("/api/v1/runs?stepId={step}"),
        format!("/api/v1/steps/{step}"),
    ] {
        let answer = app.get(&path).await.expect(200);
        let text = answer.body.to_string();
        assert!(!text.contains(&token) && !text.contains("token="), "{path} shows a token: {text}");
    }
    app.post_raw(&received.callback, "ok").await.expect(200);
    app.wait_root(run, "Complete").await;
    let events = app.get(&format!("/api/v1/runs/{run}/events")).await.expect(200).body.to_string();
    assert!(!events.contains(&token), "{events}");
}
