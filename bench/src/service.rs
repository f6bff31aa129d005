//! The fast service that every action calls: an actix-web server of its own.
//!
//! - `POST /cb?aetr=<callback>`: answers 202, then POSTs the request's body back to the callback
//!   URL at once, from a bounded pool of connections (at most [`CALLBACKS_IN_FLIGHT`] at once,
//!   kept alive). A callback that meets a connection error or a 5xx is sent again, as the
//!   contract asks of services.
//! - `POST /sync`: answers 200 with the request's body, for callers that wait for the answer
//!   (Celery's tasks).
//!
//! While latency is being recorded, the service notes when it sends a run's callback
//! (`X-Aetr-Run`) and, when that run's next POST arrives, how long it took.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Result;
use tokio::sync::Semaphore;

/// Callbacks in flight at once, and so connections to aetr.
pub const CALLBACKS_IN_FLIGHT: usize = 512;

#[derive(Default)]
struct Latency {
    on: AtomicBool,
    /// When each run's last callback was sent.
    sent: Mutex<HashMap<String, Instant>>,
    /// Callback → next POST, in microseconds.
    samples: Mutex<Vec<u64>>,
}

struct Shared {
    http: reqwest::Client,
    slots: Semaphore,
    posts: AtomicU64,
    callbacks_failed: AtomicU64,
    latency: Latency,
}

pub struct Service {
    pub url: String,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
}

impl Service {
    pub async fn start() -> Result<Service> {
        // aetr's HTTP server closes a connection after 5 s idle: a pooled connection is dropped
        // before that, so that a callback never races the server's close.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(CALLBACKS_IN_FLIGHT)
            .pool_idle_timeout(Duration::from_secs(4))
            .timeout(Duration::from_secs(30))
            .build()?;
        let shared = Arc::new(Shared {
            http,
            slots: Semaphore::new(CALLBACKS_IN_FLIGHT),
            posts: AtomicU64::new(0),
            callbacks_failed: AtomicU64::new(0),
            latency: Latency::default(),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .route("/cb", web::post().to(call_back))
                .route("/sync", web::post().to(answer))
        })
        .workers(1)
        // Idle connections stay open for as long as aetr's client keeps them (90 s by default):
        // closing one as aetr reuses it fails that POST (an attempt, retried after a backoff).
        .keep_alive(Duration::from_secs(300))
        .backlog(4096)
        .max_connection_rate(4096)
        .disable_signals()
        .bind(("127.0.0.1", 0))?;
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Service { url: format!("http://127.0.0.1:{port}"), shared, server: handle })
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// POSTs received so far.
    pub fn posts(&self) -> u64 {
        self.shared.posts.load(Ordering::Relaxed)
    }

    /// Callbacks given up after a minute of errors.
    pub fn callbacks_failed(&self) -> u64 {
        self.shared.callbacks_failed.load(Ordering::Relaxed)
    }

    /// Starts recording callback → next POST latencies, from none.
    pub fn record_latency(&self, on: bool) {
        let latency = &self.shared.latency;
        if on {
            latency.sent.lock().unwrap_or_else(|e| e.into_inner()).clear();
            latency.samples.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        latency.on.store(on, Ordering::SeqCst);
    }

    /// The latencies recorded, in microseconds, sorted.
    pub fn latencies_us(&self) -> Vec<u64> {
        let mut all = self.shared.latency.samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
        all.sort_unstable();
        all
    }

    pub async fn stop(self) {
        self.server.stop(true).await;
    }
}

async fn answer(body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    shared.posts.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok().body(body)
}

async fn call_back(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let arrived = Instant::now();
    shared.posts.fetch_add(1, Ordering::Relaxed);
    let Some(url) = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "aetr")
        .map(|(_, v)| v.into_owned())
    else {
        return HttpResponse::BadRequest().body("no aetr query parameter");
    };
    let run = req.headers().get("x-aetr-run").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let latency = &shared.latency;
    let recording = latency.on.load(Ordering::Relaxed);
    if let (true, Some(run)) = (recording, &run) {
        let sent = latency.sent.lock().unwrap_or_else(|e| e.into_inner()).remove(run);
        if let Some(sent) = sent {
            let us = arrived.duration_since(sent).as_micros() as u64;
            latency.samples.lock().unwrap_or_else(|e| e.into_inner()).push(us);
        }
    }
    let shared = shared.into_inner();
    tokio::spawn(async move {
        let Ok(_slot) = shared.slots.acquire().await else { return };
        if let (true, Some(run)) = (recording, run) {
            let mut sent = shared.latency.sent.lock().unwrap_or_else(|e| e.into_inner());
            sent.insert(run, Instant::now());
        }
        if !send(&shared.http, &url, body).await {
            shared.callbacks_failed.fetch_add(1, Ordering::Relaxed);
        }
    });
    HttpResponse::Accepted().finish()
}

/// POSTs a callback until aetr answers something final (200, 404, 409), for up to a minute.
async fn send(http: &reqwest::Client, url: &str, body: web::Bytes) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(10);
    loop {
        match http.post(url).body(body.clone()).send().await {
            Ok(answer) if !answer.status().is_server_error() => {
                return answer.status().is_success();
            }
            _ if Instant::now() > deadline => return false,
            _ => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }
}
