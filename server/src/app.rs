//! `aetr server`: finds the database, applies the migrations, and serves the API, the callbacks
//! and the dispatcher until SIGINT or SIGTERM. Then it stops taking work, lets the work in hand
//! finish (up to AETR_SHUTDOWN_TIMEOUT_SECONDS), stops serving, and stops the embedded database
//! if it started one.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::dev::Service;
use actix_web::{web, App, HttpServer};
use aetr_engine::Limits;
use anyhow::{bail, Context, Result};
use deadpool_postgres::Pool;
use futures_util::FutureExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{DatabaseArgs, ServerArgs};
use crate::db::{self, Database};
use crate::dispatch::Dispatcher;
use crate::routes;
use crate::runs::{Runs, Settings};
use crate::scripts::{ScriptPool, ScriptSettings};
use crate::store;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub pool: Pool,
    pub runs: Runs,
    pub limits: Limits,
    pub max_definition_bytes: usize,
    pub max_input_bytes: usize,
    pub max_callback_bytes: usize,
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
    let key = {
        let client = pool.get().await.context("cannot connect to the database")?;
        store::runs::callback_key(&client).await?
    };
    let listener = std::net::TcpListener::bind(args.bind)
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr: SocketAddr = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    let settings = Settings {
        public_url: public_url.clone(),
        default_callback_timeout_seconds: (args.callback_timeout_seconds > 0)
            .then_some(args.callback_timeout_seconds),
        limits: args.limits.tree_limits(),
        max_result_bytes: args.limits.max_callback_bytes,
        dispatch_concurrency: args.dispatch_concurrency as usize,
        poll_interval: Duration::from_millis(args.poll_interval_ms),
    };
    let script_settings = ScriptSettings::of(&args.scripts, args.limits.max_callback_bytes)?;
    let scripts =
        ScriptPool::start(script_settings).await.context("cannot start the script workers")?;
    let (runs, accepted) = Runs::new(pool.clone(), settings, key, scripts.clone())?;
    let dispatcher = Dispatcher::start(&runs, database.config.clone(), accepted);

    let state = web::Data::new(AppState {
        pool: pool.clone(),
        runs: runs.clone(),
        limits: args.limits.tree_limits(),
        max_definition_bytes: args.limits.max_definition_bytes,
        max_input_bytes: args.limits.max_input_bytes,
        max_callback_bytes: args.limits.max_callback_bytes,
    });
    let server = HttpServer::new(move || {
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
    })
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let mut serving = tokio::spawn(server);
    tracing::info!(public_url, "aetr listening on http://{addr}");

    let outcome = tokio::select! {
        signal = stop_signal() => {
            tracing::info!(signal = signal?, "stopping: no new work is taken; the work in hand is finishing");
            Ok(())
        }
        served = &mut serving => match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::from(e).context("the HTTP server failed")),
            Err(e) => Err(anyhow::Error::from(e).context("the HTTP server failed")),
        },
    };
    // Callbacks are still taken while the work in hand finishes.
    runs.stop(Duration::from_secs(args.shutdown_timeout_seconds)).await;
    dispatcher.stop().await;
    scripts.stop().await;
    handle.stop(true).await;
    let _ = serving.await;
    tracing::info!("aetr stopped serving");
    pool.close();
    outcome
}

/// Waits for SIGTERM or SIGINT, and names it.
async fn stop_signal() -> Result<&'static str> {
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
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
