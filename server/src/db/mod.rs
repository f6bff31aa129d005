//! Where the database is, the connection pool, and the migrations.

pub mod embedded;
mod migrate;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseArgs;
use embedded::{Cluster, Keep};
pub use migrate::migrate;

/// The database aetr makes in its own cluster.
const EMBEDDED_DATABASE: &str = "aetr";

/// The database to use: the one `DATABASE_URL` names, or one in aetr's own cluster.
#[derive(Debug)]
pub struct Database {
    pub config: tokio_postgres::Config,
    /// aetr's own cluster, when it runs one. Dropping it without [`Database::close`] stops the
    /// cluster too, through its watchdog.
    cluster: Option<Cluster>,
}

impl Database {
    /// Finds the database, starting aetr's own cluster when `DATABASE_URL` is unset.
    pub async fn locate(args: &DatabaseArgs) -> Result<Database> {
        if let Some(url) = &args.database_url {
            let config = url.parse::<tokio_postgres::Config>().map_err(|e| {
                anyhow::anyhow!("DATABASE_URL is not a PostgreSQL connection string: {e}")
            })?;
            return Ok(Database { config, cluster: None });
        }
        let dir = args.data_dir.join("pg");
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(&dir, Keep::Data))
            .await
            .context("the embedded PostgreSQL's start was interrupted")?
            .context("cannot start the embedded PostgreSQL")?;
        create_database(&cluster.pg_config("postgres"), EMBEDDED_DATABASE).await?;
        Ok(Database { config: cluster.pg_config(EMBEDDED_DATABASE), cluster: Some(cluster) })
    }

    /// A pool of connections, with the sizes and timeouts of `args`. Statements are prepared
    /// once per connection and cached.
    pub fn pool(&self, args: &DatabaseArgs) -> Result<Pool> {
        let mut config = self.config.clone();
        config.application_name("aetr").connect_timeout(args.timeout());
        // No JIT: aetr's statements each touch a few rows by key (or a page of a list), and
        // JIT compiling one whose estimated cost crosses `jit_above_cost` (a tree's closure,
        // a batch's writes) took 20 to 200 ms, where the statement itself takes under one
        // (bench/README.md, "Measurements behind constants in the code").
        let mut options = format!("{} -c jit=off", config.get_options().unwrap_or_default());
        if args.db_statement_timeout_ms > 0 {
            options += &format!(" -c statement_timeout={}", args.db_statement_timeout_ms);
        }
        config.options(options.trim());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        Pool::builder(manager)
            .max_size(args.db_pool_size as usize)
            .wait_timeout(Some(args.timeout()))
            .create_timeout(Some(args.timeout()))
            .recycle_timeout(Some(args.timeout()))
            .runtime(Runtime::Tokio1)
            .build()
            .context("cannot build the database pool")
    }

    /// Stops aetr's own cluster, if it runs one.
    pub async fn close(self) -> Result<()> {
        match self.cluster {
            Some(cluster) => tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .context("the embedded PostgreSQL's stop was interrupted")?,
            None => Ok(()),
        }
    }
}

/// Connects once, outside any pool: for migrations and administration.
pub async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let (client, connection) =
        config.connect(NoTls).await.context("cannot connect to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "a database connection ended with an error");
        }
    });
    Ok(client)
}

/// Creates database `name` on the server of `admin` (a connection to another database) unless
/// it exists.
pub async fn create_database(admin: &tokio_postgres::Config, name: &str) -> Result<()> {
    let client = connect(admin).await?;
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?;
    if exists.is_none() {
        client
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
    }
    Ok(())
}

/// An SQL identifier, quoted. For names aetr makes, never for user input.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether an error (from the pool or a statement) says that the database cannot be reached now.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    use deadpool_postgres::PoolError;
    if let Some(db) = e.downcast_ref::<tokio_postgres::Error>() {
        return database_unavailable(db);
    }
    match e.downcast_ref::<PoolError>() {
        Some(PoolError::Backend(db)) => database_unavailable(db),
        Some(PoolError::Timeout(_) | PoolError::Closed) => true,
        _ => false,
    }
}

/// Whether an error says the database cannot be reached now (as opposed to a bug): the
/// connection is gone or failed, the server is shutting down or refusing connections, or a
/// statement ran out of time.
pub fn database_unavailable(e: &tokio_postgres::Error) -> bool {
    use std::error::Error;
    if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        return true;
    }
    e.code().is_some_and(|code| {
        let code = code.code();
        code.starts_with("08") // connection exception
            || code.starts_with("57P") // admin, crash or startup shutdown
            || code == "53300" // too many connections
            || code == "57014" // statement timeout
    })
}
