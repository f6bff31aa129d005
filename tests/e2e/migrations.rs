//! `aetr migrate`: the schema's migrations, applied once under an advisory lock.

use crate::support::postgres::{drop_database, empty_database, postgres};
use aetr_server::db::connect;

async fn migrate(database: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_aetr"))
        .arg("migrate")
        .env("DATABASE_URL", postgres().connection_string(database))
        .env_remove("AETR_DATA_DIR")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn replicas_migrating_together_apply_each_migration_once() {
    let database = empty_database().await;
    let runs = futures_util::future::join_all((0..4).map(|_| migrate(&database))).await;
    for out in &runs {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let applied: usize = runs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).matches("applied a database migration").count())
        .sum();
    let client = connect(&postgres().config(&database)).await.unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM refinery_schema_history ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied, versions.len(), "each migration was applied by one of them");
    assert_eq!(versions[0], 1);

    // Again: nothing to do.
    let again = migrate(&database).await;
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("applied a database migration"));

    // The callback key was made once, and is 32 bytes.
    let keys = client.query("SELECT key FROM callback_key", &[]).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].get::<_, Vec<u8>>(0).len(), 32);
    drop(client);
    drop_database(database);
}

#[tokio::test]
async fn a_bad_database_url_is_one_clear_line() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aetr"))
        .arg("migrate")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("aetr: cannot connect to PostgreSQL"), "{stderr}");
}
