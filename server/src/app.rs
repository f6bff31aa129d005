//! `aetr server`: finds the database, applies the migrations, and serves the API, the callbacks
//! and the dispatcher until SIGINT or SIGTERM. Then it stops taking work, lets the work in hand
//! finish (up to AETR_SHUTDOWN_TIMEOUT_SECONDS), stops serving, and stops the embedded database
//! if it started one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Service;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use aetr_engine::Limits;
use anyhow::{bail, Context, Result};
use deadpool_postgres::Pool;
use futures_util::FutureExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{DatabaseArgs, ServerArgs};
use crate::db::{self, Database};
use crate::dispatch::{self, Dispatcher, Outbox};
use crate::guard::{Egress, Rules};
use crate::http::auth::{self, ApiTokens};
use crate::http::headers::{self, MaxHeaderBytes};
use crate::http::request_id;
use crate::notify::deliver::Deliverer;
use crate::otel;
use crate::retention;
use crate::routes;
use crate::runs::{Runs, Settings};
use crate::schedules;
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
    /// The SSRF rules, which saved action URLs must pass.
    pub url_rules: Arc<Rules>,
    /// `AETR_TRACE_URL`: a run's trace in the operator's tracing UI, with `{traceId}`.
    pub trace_url: Option<String>,
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
    if otel::start().context("cannot start exporting spans (OTEL_EXPORTER_OTLP_ENDPOINT)")? {
        tracing::info!("exporting spans over OTLP/HTTP");
    }
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
    let egress = egress(args, addr, &public_url)?;
    let url_rules = egress.rules.clone();
    let settings = Settings {
        public_url: public_url.clone(),
        default_callback_timeout_seconds: (args.callback_timeout_seconds > 0)
            .then_some(args.callback_timeout_seconds),
        max_map_items: args.max_map_items,
        limits: args.limits.tree_limits(),
        group_committers: (args.database.db_pool_size as usize / 8).clamp(1, 8),
    };
    // Webhooks go out under the action URL rules, through a client of their own.
    let webhook_http =
        egress.client_builder()?.user_agent(concat!("aetr/", env!("CARGO_PKG_VERSION"))).build()?;
    let dispatch = dispatch::Settings {
        egress,
        max_result_bytes: args.limits.max_callback_bytes,
        concurrency: args.dispatch_concurrency as usize,
        poll_interval: Duration::from_millis(args.poll_interval_ms),
    };
    let tokens = ApiTokens::load(
        args.auth.api_tokens.as_ref().map(|t| t.0.as_str()),
        args.auth.api_tokens_file.as_deref(),
    )?
    .guarding_metrics(args.auth.metrics_require_token);
    if !tokens.enabled() && !addr.ip().is_loopback() {
        tracing::warn!(
            "aetr listens on {addr}, which is not a loopback address, and no API tokens are \
             set: anyone who can reach it can define steps, start runs and read results. Set \
             AETR_API_TOKENS or AETR_API_TOKENS_FILE"
        );
    }
    let script_settings = ScriptSettings::of(&args.scripts, args.limits.max_script_result_bytes)?;
    let scripts =
        ScriptPool::start(script_settings).await.context("cannot start the script workers")?;
    let (outbox, accepted) = Outbox::new(pool.clone(), dispatch)?;
    let runs = Runs::new(pool.clone(), settings, key, scripts.clone(), Arc::clone(&outbox));
    let dispatcher = Dispatcher::start(&runs, &outbox, database.config.clone(), accepted);
    let scheduler = schedules::start(runs.clone(), pool.clone(), runs.stopping());
    let deliverer = Deliverer {
        pool: pool.clone(),
        http: webhook_http,
        rules: url_rules.clone(),
        wake: runs.finished().any_ended(),
    }
    .start(runs.stopping());
    let sweeper =
        args.retention_days.map(|days| retention::start(pool.clone(), days, runs.stopping()));

    let state = web::Data::new(AppState {
        pool: pool.clone(),
        runs: runs.clone(),
        limits: args.limits.tree_limits(),
        max_definition_bytes: args.limits.max_definition_bytes,
        max_input_bytes: args.limits.max_input_bytes,
        max_callback_bytes: args.limits.max_callback_bytes,
        url_rules: url_rules.clone(),
        trace_url: args.trace_url.clone(),
    });
    let tokens = web::Data::new(tokens);
    let max_header_bytes = web::Data::new(MaxHeaderBytes(args.limits.max_header_bytes as usize));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(tokens.clone())
            .app_data(max_header_bytes.clone())
            .wrap(from_fn(auth::middleware))
            .wrap(from_fn(headers::middleware))
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
            .wrap(from_fn(request_id::middleware))
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
    if let Some(sweeper) = sweeper {
        let _ = sweeper.await;
    }
    let _ = deliverer.await;
    let _ = scheduler.await;
    dispatcher.stop().await;
    scripts.stop().await;
    handle.stop(true).await;
    let _ = serving.await;
    otel::stop();
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

/// The SSRF guard's settings. aetr's own address is denied: the bound address, `localhost`
/// when that is loopback, and the public URL's host, each at their port.
fn egress(args: &ServerArgs, bound: SocketAddr, public_url: &str) -> Result<Egress> {
    let port = bound.port();
    let mut own = Vec::new();
    if bound.ip().is_unspecified() {
        own.extend([format!("127.0.0.1:{port}"), format!("[::1]:{port}")]);
    } else {
        own.push(bound.to_string());
    }
    if bound.ip().is_unspecified() || bound.ip().is_loopback() {
        own.push(format!("localhost:{port}"));
    }
    if let Ok(url) = url::Url::parse(public_url) {
        if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
            own.push(format!("{host}:{port}"));
        }
    }
    let rules = Rules::new(&args.egress.action_allow, &args.egress.action_deny, &own)
        .map_err(anyhow::Error::msg)?;
    Ok(Egress {
        rules: Arc::new(rules),
        max_redirects: args.egress.action_max_redirects as usize,
        proxy: args.egress.action_proxy.clone(),
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
