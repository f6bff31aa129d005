//! The schema's migrations (`migrations/*.sql`, embedded in the binary), applied with refinery
//! under a PostgreSQL advisory lock, so that replicas starting together apply them once.

use anyhow::{Context, Result};

use super::connect;

refinery::embed_migrations!("../migrations");

/// The advisory lock's key: "aetr" and 1.
const MIGRATION_LOCK: i64 = 0x6165_7472_0000_0001;

/// Applies the migrations that the database lacks. A migration that was applied with other
/// contents than the binary's is an error.
pub async fn migrate(config: &tokio_postgres::Config) -> Result<()> {
    let mut client = connect(config).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("cannot take the migrations' advisory lock")?;
    let report = migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await
        .context("cannot apply the database migrations")?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied a database migration");
    }
    // The lock ends with the session; unlocking first lets a waiting replica go on at once.
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    Ok(())
}
