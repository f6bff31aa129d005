//! `GET /steps?q=&limit=&after=`.

use serde_json::{json, Value};

use super::action;
use crate::support::TestApp;

fn ids(page: &Value) -> Vec<String> {
    page.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn steps_page_by_id_following_the_link_header() {
    let app = TestApp::spawn().await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            app.create_step(&action(&format!("step {i}"), "http://s.test/")).await.to_string(),
        );
    }
    made.sort();

    let mut seen = Vec::new();
    let mut next = Some("/api/v1/steps?limit=3".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let answer = app.get(&path).await.expect(200);
        pages += 1;
        seen.extend(ids(&answer.body));
        next = answer.header("link").map(|link| {
            let url =
                link.strip_prefix('<').and_then(|l| l.split_once(">; rel=\"next\"")).unwrap().0;
            assert!(url.starts_with("/api/v1/steps?limit=3&after="), "{link}");
            url.to_owned()
        });
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made, "every step once, in id order");

    let all = app.get("/api/v1/steps").await.expect(200);
    assert_eq!(ids(&all.body), made);
    assert_eq!(all.header("link"), None, "no link after the last page");
    assert_eq!(
        all.body[0],
        json!({"id": made[0], "name": all.body[0]["name"], "stepType": "Action"})
    );
}

#[tokio::test]
async fn q_finds_names_containing_it_in_any_case_and_keeps_it_in_the_link() {
    let app = TestApp::spawn().await;
    for name in ["Fetch orders", "fetch users", "score", "100% done", "a_b"] {
        app.create_step(&action(name, "http://s.test/")).await;
    }
    let names = |page: &Value| -> Vec<String> {
        let mut n: Vec<String> = page
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&app.get("/api/v1/steps?q=FETCH").await.expect(200).body),
        ["Fetch orders", "fetch users"]
    );
    assert_eq!(
        names(&app.get("/api/v1/steps?q=%25").await.expect(200).body),
        ["100% done"],
        "% is literal"
    );
    assert_eq!(
        names(&app.get("/api/v1/steps?q=_").await.expect(200).body),
        ["a_b"],
        "_ is literal"
    );
    assert_eq!(app.get("/api/v1/steps?q=nothing").await.expect(200).body, json!([]));

    let first = app.get("/api/v1/steps?q=fetch+&limit=1").await.expect(200);
    let link = first.header("link").unwrap();
    assert!(link.contains("q=fetch+&limit=1&after="), "{link}");
}

#[tokio::test]
async fn a_bad_limit_or_after_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    for (query, error) in [
        ("limit=0", "limit: expected a whole number from 1 to 1000, found \"0\""),
        ("limit=1001", "limit: expected a whole number from 1 to 1000, found \"1001\""),
        ("limit=ten", "limit: expected a whole number from 1 to 1000, found \"ten\""),
        ("after=xyz", "after: expected the id of the last item seen, found \"xyz\""),
    ] {
        let answer = app.get(&format!("/api/v1/steps?{query}")).await.expect(400);
        assert_eq!(answer.errors(), [error]);
    }
    app.get("/api/v1/steps?limit=1000").await.expect(200);
}
