//! The store's SQL against the migrated schema: every statement is prepared by PostgreSQL, so a
//! typo in one that few tests reach (a column renamed in a migration, say) fails here at once.

use std::path::Path;

use aetr_server::db::connect;

use crate::support::postgres::{drop_database, fresh_database, postgres};

#[tokio::test]
async fn every_store_statement_prepares_against_the_migrated_schema() {
    let name = fresh_database().await;
    let client = connect(&postgres().config(&name)).await.unwrap();
    let statements = aetr_server::store::statements();
    let mut failed = Vec::new();
    for (what, sql) in &statements {
        if let Err(e) = client.prepare(sql).await {
            failed.push(format!(
                "{what}: {}",
                e.as_db_error().map_or(e.to_string(), |d| d.to_string())
            ));
        }
    }
    drop(client);
    drop_database(name);
    assert!(failed.is_empty(), "statements that PostgreSQL refuses:\n{}", failed.join("\n"));
    assert!(statements.len() >= 50, "only {} statements listed", statements.len());
}

/// Every statement of `server/src/store/` is a `..._SQL` constant that its module lists, so the
/// test above sees them all: no SQL written inline in a call, and no constant left unlisted.
#[test]
fn the_store_lists_every_statement_it_sends() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut constants = 0;
    let mut inline = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        constants += source.matches("_SQL: &str").count();
        // (`batch_execute` sends BEGIN, COMMIT and ROLLBACK: nothing to prepare.)
        for call in
            [".prepare_cached(\"", ".query(\"", ".query_opt(\"", ".query_one(\"", ".execute(\""]
        {
            if source.contains(call) {
                inline.push(format!("{}: {call}...", path.display()));
            }
        }
    }
    assert!(inline.is_empty(), "SQL written inline instead of as a listed constant: {inline:?}");
    assert_eq!(
        constants,
        aetr_server::store::statements().len(),
        "a `..._SQL` constant in server/src/store/ is missing from its module's `statements!`"
    );
}
