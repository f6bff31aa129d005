//! The transaction that moves runs (`store::tx::Tx`): its `BEGIN` goes with its first
//! statement, and one dropped half-way is rolled back before its connection is used again.

use aetr_server::store::tx::{Tx, KEYED_LOOKUPS};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::support::TestApp;

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
    let (begun, created) = tokio::join!(tx.begin(KEYED_LOOKUPS), create);
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
    let stopped = tokio::time::timeout(std::time::Duration::from_millis(50), async {
        let sleep = tx.client().batch_execute("CREATE TABLE stopped (x int); SELECT pg_sleep(1)");
        tokio::try_join!(tx.begin(""), sleep)
    })
    .await;
    assert!(stopped.is_err(), "the statement was still running");
    drop(tx);
    assert_eq!(left_behind(&pool, "stopped").await, (false, false));

    // Committed, it stays.
    let tx = Tx::new(pool.get().await.unwrap());
    let create = tx.client().batch_execute("CREATE TABLE committed (x int)");
    let (begun, created) = tokio::join!(tx.begin(""), create);
    begun.unwrap();
    created.unwrap();
    tx.commit().await.unwrap();
    drop(tx);
    assert_eq!(left_behind(&pool, "committed").await, (false, true));

    // A failed statement aborts the transaction; dropped, it is rolled back all the same.
    let tx = Tx::new(pool.get().await.unwrap());
    let create = tx.client().batch_execute("CREATE TABLE failed (x int)");
    let fail = tx.client().batch_execute("SELECT 1/0");
    let (begun, created, failed) = tokio::join!(tx.begin(""), create, fail);
    begun.unwrap();
    created.unwrap();
    assert!(failed.is_err());
    drop(tx);
    assert_eq!(left_behind(&pool, "failed").await, (false, false));
}
