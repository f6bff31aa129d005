//! The hottest queries use their indexes: with sequential scans priced out, each plan must still
//! find an index to use, so that a change to a query or an index that loses it fails here.

use serde_json::json;

use super::api;
use crate::support::{TestApp, TestService};
use aetr_server::store::{nodes, views};

async fn plan(
    db: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> String {
    let rows = db.query(&format!("EXPLAIN {sql}"), params).await.unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn the_claim_the_lock_and_the_pages_use_their_indexes() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let run = app.start_run(app.put_tree(&api("a", &svc.at("/a"))).await, json!(null)).await;
    svc.next().await;
    let db = app.db().await;
    db.batch_execute("SET enable_seqscan = off; ANALYZE").await.unwrap();
    let now = std::time::SystemTime::now();

    let claim = plan(&db, nodes::CLAIM_SQL, &[&now, &10i64, &10i64, &now]).await;
    for index in ["run_nodes_due", "run_nodes_lease", "run_nodes_deadline"] {
        assert!(claim.contains(index), "the claim does not use {index}:\n{claim}");
    }
    let next_due = plan(&db, nodes::NEXT_DUE_SQL, &[]).await;
    let lock = plan(&db, nodes::LOCK_SQL, &[&vec![run], &vec![0i32]]).await;
    assert!(lock.contains("run_nodes_pkey"), "{lock}");
    let children = plan(&db, views::CHILDREN_SQL, &[&run, &0i32, &-1i32, &51i64]).await;
    assert!(children.contains("run_nodes_children"), "{children}");
    let runs = plan(
        &db,
        views::RUNS_SQL,
        &[
            &Some("Complete"),
            &None::<uuid::Uuid>,
            &None::<uuid::Uuid>,
            &51i64,
            &None::<uuid::Uuid>,
            &Some(false),
        ],
    )
    .await;
    assert!(runs.contains("runs_state") || runs.contains("runs_pkey"), "{runs}");
    for (name, text) in [
        ("claim", &claim),
        ("next_due", &next_due),
        ("lock", &lock),
        ("children", &children),
        ("runs", &runs),
    ] {
        assert!(!text.contains("Seq Scan"), "{name} scans a table:\n{text}");
    }
}
