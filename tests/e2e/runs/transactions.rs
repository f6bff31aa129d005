//! The transaction that moves runs (`store::tx::Tx`): its `BEGIN` goes with its first
//! statement, one dropped half-way is rolled back before its connection is used again, and a
//! COMMIT sent with a statement that fails rolls back.

use std::time::Duration;

use aetr_server::store::tx::{Tx, KEYED_LOOKUPS};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::future::{join, join3, join4, try_join};
use serde_json::json;
use tokio_postgres::NoTls;

use super::{api, seq};
use crate::support::{TestApp, TestService};

/// A pool of one connection, so that each test sees what the last user left on it.
fn one_connection(app: &TestApp) -> Pool {
    let config: tokio_postgres::Config = app.database_url().parse().expect("a database URL");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager).max_size(1).runtime(Runtime::Tokio1).build().expect("a pool")
}

/// Whether the connection is inside a transaction that wrote something, and whether `table`
/// exists.
async fn left_behind(pool: &Pool, table: &str) -> (bool, bool) {
    let client = pool.get().await.expect("the connection comes back to the pool");
    let row = client
        .query_one(
            "SELECT pg_current_xact_id_if_assigned() IS NOT NULL, to_regclass($1) IS NOT NULL",
            &[&table],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_transaction_dropped_half_way_is_rolled_back_and_its_connection_kept() {
    let app = TestApp::spawn().await;
    let pool = one_connection(&app);

    // Begun in the same round trip as its first statement, with the group's settings.
    let tx = Tx::new(pool.get().await.unwrap());
    let create = tx.client().batch_execute("CREATE TABLE dropped_half_way (x int)");
    let (begun, created) = join(tx.begin(KEYED_LOOKUPS), create).await;
    begun.unwrap();
    created.unwrap();
    let setting: String = tx.client().query_one("SHOW enable_hashjoin", &[]).await.unwrap().get(0);
    assert_eq!(setting, "off", "the settings hold inside the transaction");
    drop(tx);
    assert_eq!(left_behind(&pool, "dropped_half_way").await, (false, false));
    let client = pool.get().await.unwrap();
    let setting: String = client.query_one("SHOW enable_hashjoin", &[]).await.unwrap().get(0);
    assert_eq!(setting, "on", "SET LOCAL ends with the transaction");
    drop(client);

    // A task stopped while its statement is in flight.
    let tx = Tx::new(pool.get().await.unwrap());
    let stopped = tokio::time::timeout(Duration::from_millis(50), async {
        let sleep = tx.client().batch_execute("CREATE TABLE stopped (x int); SELECT pg_sleep(1)");
        try_join(tx.begin(""), sleep).await
    })
    .await;
    assert!(stopped.is_err(), "the statement was still running");
    drop(tx);
    assert_eq!(left_behind(&pool, "stopped").await, (false, false));

    // Committed, it stays.
    let tx = Tx::new(pool.get().await.unwrap());
    let create = tx.client().batch_execute("CREATE TABLE committed (x int)");
    let (begun, created) = join(tx.begin(""), create).await;
    begun.unwrap();
    created.unwrap();
    tx.commit().await.unwrap();
    drop(tx);
    assert_eq!(left_behind(&pool, "committed").await, (false, true));

    // A failed statement aborts the transaction; dropped, it is rolled back all the same.
    let tx = Tx::new(pool.get().await.unwrap());
    let create = tx.client().batch_execute("CREATE TABLE failed (x int)");
    let fail = tx.client().batch_execute("SELECT 1/0");
    let (begun, created, failed) = join3(tx.begin(""), create, fail).await;
    begun.unwrap();
    created.unwrap();
    assert!(failed.is_err());
    drop(tx);
    assert_eq!(left_behind(&pool, "failed").await, (false, false));

    // The same with the COMMIT sent before the failure is known: it rolls back.
    let tx = Tx::new(pool.get().await.unwrap());
    let create = tx.client().batch_execute("CREATE TABLE failed_before_commit (x int)");
    let fail = tx.client().batch_execute("SELECT 1/0");
    let (begun, created, failed, committed) = join4(tx.begin(""), create, fail, tx.commit()).await;
    begun.unwrap();
    created.unwrap();
    assert!(failed.is_err());
    committed.unwrap();
    drop(tx);
    assert_eq!(left_behind(&pool, "failed_before_commit").await, (false, false));
}

/// What a run has in the database: its nodes' phases and lease epochs, its attempts, and how
/// many history events.
async fn stored(db: &tokio_postgres::Client, run: uuid::Uuid) -> (String, String, i64) {
    let row = db
        .query_one(
            "SELECT (SELECT string_agg(idx || ':' || phase || ':' || lease_epoch, ' ' ORDER BY idx)
                     FROM run_nodes WHERE run_id = $1),
                    (SELECT string_agg(idx || '#' || n || ':' || status, ' ' ORDER BY idx, n)
                     FROM attempts WHERE run_id = $1),
                    (SELECT count(*) FROM run_events WHERE run_id = $1)",
            &[&run],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn a_batch_whose_node_write_finds_a_started_node_not_waiting_writes_nothing() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq("s", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))]);
    let run = app.start_run(app.put_tree(&tree).await, json!(1)).await;
    let a = svc.next().await;
    // Corrupt state: the node that a's result starts is not Waiting any more. The batch's node
    // write fails inside PostgreSQL, so its COMMIT, sent with the writes, rolls everything back.
    let db = app.db().await;
    db.execute("UPDATE run_nodes SET phase = 'Cancelled' WHERE run_id = $1 AND idx = 2", &[&run])
        .await
        .unwrap();
    let before = stored(&db, run).await;
    assert!(before.0.contains("1:Executing") && before.0.contains("2:Cancelled"), "{before:?}");

    let answer = app.post_raw(&a.callback, "done").await.expect(500);
    assert!(!answer.errors().concat().contains("run_nodes"), "no SQL in the answer: {answer:?}");
    assert_eq!(stored(&db, run).await, before, "nothing of the batch was written");
    svc.expect_none(Duration::from_millis(300)).await;
    let log = app.server().log();
    assert!(
        log.contains("node writes matched") && log.contains("was not Waiting"),
        "the log names the cause:\n{log}"
    );
}
