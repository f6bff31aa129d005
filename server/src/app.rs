//! `aetr server`: finds the database, applies the migrations, and serves the API until SIGINT
//! or SIGTERM, then stops the embedded database if it started one.

use std::net::SocketAddr;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{web, App, HttpServer};
use aetr_engine::Limits;
use anyhow::{bail, Context, Result};
use deadpool_postgres::Pool;
use futures_util::FutureExt;

use crate::config::{DatabaseArgs, ServerArgs};
use crate::db::{self, Database};
use crate::routes;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub pool: Pool,
    pub limits: Limits,
    pub max_definition_bytes: usize,
    /// The base of the callback URLs that services are given.
    pub public_url: String,
}

pub async fn serve(args: ServerArgs) -> Result<()> {
    if args.bind.ip().is_unspecified() && args.public_url.is_none() {
        bail!(
            "AETR_BIND is {}, which is no address that services can call back: set \
             AETR_PUBLIC_URL to the URL at which they reach this server",
            args.bind
        );
    }
    if let Some(url) = &args.public_url {
        check_public_url(url)?;
    }
    let database = Database::locate(&args.database).await?;
    let outcome = run(&database, &args).await;
    if let Err(e) = database.close().await {
        tracing::error!(error = format!("{e:#}"), "the embedded PostgreSQL did not stop cleanly");
    }
    outcome
}

async fn run(database: &Database, args: &ServerArgs) -> Result<()> {
    db::migrate(&database.config).await?;
    let pool = database.pool(&args.database)?;
    let listener = std::net::TcpListener::bind(args.bind)
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr: SocketAddr = listener.local_addr()?;
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let server = HttpServer::new({
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            limits: args.limits.tree_limits(),
            max_definition_bytes: args.limits.max_definition_bytes,
            public_url: public_url.clone(),
        });
        move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(|req, srv| {
                    let (method, path, started) =
                        (req.method().clone(), req.path().to_owned(), Instant::now());
                    srv.call(req).map(move |res| {
                        if let Ok(res) = &res {
                            tracing::debug!(%method, %path, status = res.status().as_u16(),
                                ms = started.elapsed().as_millis() as u64, "request");
                        }
                        res
                    })
                })
                .configure(routes::configure)
        }
    })
    .listen(listener)?;
    tracing::info!(public_url, "aetr listening on http://{addr}");
    server.run().await.context("the HTTP server failed")?;
    tracing::info!("aetr stopped serving");
    pool.close();
    Ok(())
}

fn check_public_url(url: &str) -> Result<()> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => bail!("AETR_PUBLIC_URL must be an absolute http(s) URL, such as https://aetr.example.com; it is {url:?}"),
    }
}

/// `aetr migrate`.
pub async fn migrate(args: DatabaseArgs) -> Result<()> {
    let database = Database::locate(&args).await?;
    let outcome = db::migrate(&database.config).await;
    database.close().await?;
    outcome?;
    tracing::info!("the database is up to date");
    Ok(())
}
