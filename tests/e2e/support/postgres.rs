//! The PostgreSQL the tests use: the one `DATABASE_URL` names, or a throwaway cluster started
//! the way `aetr server` starts its own (removed when the test process exits). Each test gets
//! a fresh database, cloned from a template that `aetr migrate` migrated.

use std::sync::OnceLock;

use aetr_server::db::embedded::{Cluster, Keep};
use aetr_server::db::{connect, quote_ident};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub enum Postgres {
    /// The server `DATABASE_URL` names.
    Url(String),
    /// A throwaway cluster. Never dropped: its watchdog stops and removes it when the test
    /// process exits.
    Cluster(Cluster),
}

impl Postgres {
    /// The connection string for database `name` (test databases' names need no quoting).
    pub fn connection_string(&self, name: &str) -> String {
        match self {
            Postgres::Url(url)
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                let mut url = url::Url::parse(url).expect("DATABASE_URL is a URL");
                url.set_path(name);
                url.to_string()
            }
            // In `key=value` form, a later key wins.
            Postgres::Url(pairs) => format!("{pairs} dbname={name}"),
            Postgres::Cluster(cluster) => cluster.connection_string(name),
        }
    }

    pub fn config(&self, name: &str) -> tokio_postgres::Config {
        self.connection_string(name).parse().expect("a connection string")
    }

    /// A connection to the server's `postgres` database, for administration.
    pub async fn admin(&self) -> tokio_postgres::Client {
        connect(&self.config("postgres")).await.expect("PostgreSQL accepts connections")
    }
}

pub fn postgres() -> &'static Postgres {
    static POSTGRES: OnceLock<Postgres> = OnceLock::new();
    POSTGRES.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Postgres::Url(url),
        _ => {
            let dir = std::env::temp_dir().join(format!("aetr-tests-{}", std::process::id()));
            let cluster = Cluster::start(&dir, Keep::Nothing)
                .unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e:#}"));
            Postgres::Cluster(cluster)
        }
    })
}

/// The migrated template database, made once per version of the migrations and shared by
/// test runs (so that a `DATABASE_URL` server does not collect them).
pub async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE.get_or_init(make_template).await
}

async fn make_template() -> String {
    let pg = postgres();
    let name = format!("aetr_template_{:016x}", migrations_hash());
    let admin = pg.admin().await;
    // Test processes that start together make it once.
    let lock = migrations_hash() as i64;
    admin.execute("SELECT pg_advisory_lock($1)", &[&lock]).await.expect("lock");
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query pg_database");
    if exists.is_none() {
        let scratch = format!("aetr_template_new_{}", Uuid::new_v4().simple());
        admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&scratch))).await.unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aetr"))
            .arg("migrate")
            .env("DATABASE_URL", pg.connection_string(&scratch))
            .output()
            .await
            .expect("run aetr migrate");
        assert!(
            out.status.success(),
            "aetr migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Renamed when complete, so that a template is never seen half made.
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&scratch),
                quote_ident(&name)
            ))
            .await
            .unwrap();
    }
    admin.execute("SELECT pg_advisory_unlock($1)", &[&lock]).await.expect("unlock");
    name
}

/// A fresh database for one test, cloned from the template.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!("aetr_test_{}", Uuid::new_v4().simple());
    postgres()
        .admin()
        .await
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(template)
        ))
        .await
        .expect("clone the template database");
    name
}

/// An empty database, for tests of the migrations themselves.
pub async fn empty_database() -> String {
    let name = format!("aetr_test_{}", Uuid::new_v4().simple());
    postgres()
        .admin()
        .await
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
        .await
        .expect("create a database");
    name
}

/// Drops a test's database, from any thread (it runs its own runtime).
pub fn drop_database(name: String) {
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name));
            postgres().admin().await.batch_execute(&sql).await
        })
    })
    .join();
    if let Ok(Err(e)) = dropped {
        eprintln!("could not drop a test database: {e}");
    }
}

/// Changes to the migrations make a new template.
fn migrations_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the migrations directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    let mut hasher = std::hash::DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file).expect("a migration").hash(&mut hasher);
    }
    hasher.finish() >> 1
}
