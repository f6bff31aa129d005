//! Errors never show internals: a database error is a 500 whose body holds only a request id,
//! which the server's log holds with the real cause.

use crate::support::TestApp;

#[tokio::test]
async fn a_forced_database_error_shows_no_sql_and_gives_the_request_id() {
    let mut app = TestApp::spawn().await;
    app.db().await.batch_execute("ALTER TABLE steps RENAME TO steps_moved_away").await.unwrap();

    let answer = app.get("/api/v1/steps").await;
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    let id = answer.header("x-request-id").expect("an X-Request-Id").to_owned();
    assert_eq!(answer.body["requestId"], id.as_str());
    let text = answer.body.to_string();
    for internal in ["steps", "relation", "SELECT", "postgres", "does not exist", "/src/", ".rs"] {
        assert!(!text.contains(internal), "{internal:?} leaked: {text}");
    }

    // A client's own id is kept, and every answer carries one.
    let mine = app
        .http
        .get(app.url("/api/v1/steps"))
        .header("X-Request-Id", "client-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.headers()["x-request-id"], "client-id-42");
    let health = app.get("/healthz").await;
    assert!(health.header("x-request-id").is_some_and(|id| id.len() == 32), "{:?}", health.headers);
    let not_found = app.get("/api/v1/nothing-here").await.expect(404);
    assert_eq!(not_found.body["requestId"], not_found.header("x-request-id").unwrap());

    let (_, log) = app.stop("TERM");
    let line =
        log.lines().find(|l| l.contains(&id)).unwrap_or_else(|| panic!("the log has {id}:\n{log}"));
    assert!(line.contains("steps"), "the log line holds the cause: {line}");
    assert!(log.contains("client-id-42"), "{log}");
}
