//! A real HTTP service played by a test: it records every request it gets, and answers as the
//! test says. By default it answers 202 and leaves the callback to the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use tokio::sync::{mpsc, oneshot};

/// One request that the service got.
#[derive(Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The raw query string, as sent.
    pub query: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The `aetr` query parameter, decoded: where to call back.
    pub callback: String,
    /// With [`Respond::Hold`]: answers the POST when the test says.
    pub hold: Option<oneshot::Sender<Respond>>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The URL to report a failure to.
    pub fn fail_url(&self) -> String {
        self.callback.replace("/runs/complete?", "/runs/fail?")
    }

    /// Answers a held POST.
    pub fn answer(&mut self, respond: Respond) {
        let hold = self.hold.take().expect("a held request");
        hold.send(respond).expect("the service still waits");
    }
}

/// Makes a callback's result from the request (`None`: no result).
pub type MakeResult = Arc<dyn Fn(&Received) -> Option<String> + Send + Sync>;

/// How the service answers a POST.
#[derive(Clone)]
pub enum Respond {
    /// This status, no body.
    Status(u16),
    /// This status and body.
    Body(u16, String),
    /// A 429 with this `Retry-After` (seconds).
    TooMany(u64),
    /// This 3xx status, with this `Location`, to which the request's own query (with the
    /// callback URL) is added.
    Redirect(u16, String),
    /// Wait for the test: [`Received::answer`].
    Hold,
    /// 202, then call back at once with what the function makes of the request (`None`: no
    /// result), from a task of the service's.
    CallBack(MakeResult),
}

impl std::fmt::Debug for Respond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Respond::Status(s) => write!(f, "Status({s})"),
            Respond::Body(s, b) => write!(f, "Body({s}, {b:?})"),
            Respond::TooMany(s) => write!(f, "TooMany({s})"),
            Respond::Redirect(s, to) => write!(f, "Redirect({s}, {to})"),
            Respond::Hold => f.write_str("Hold"),
            Respond::CallBack(_) => f.write_str("CallBack(..)"),
        }
    }
}

struct Shared {
    /// Answers by path; the default is 202.
    answers: Mutex<HashMap<String, Respond>>,
    received: mpsc::UnboundedSender<Received>,
    http: reqwest::Client,
}

pub struct TestService {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    shared: Arc<Shared>,
    received: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    server: actix_web::dev::ServerHandle,
}

impl TestService {
    pub async fn start() -> TestService {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            answers: Mutex::new(HashMap::new()),
            received: tx,
            http: reqwest::Client::new(),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).default_service(web::to(handle))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind a test service");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        TestService {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            received: tokio::sync::Mutex::new(rx),
            server: handle,
        }
    }

    /// The URL of a path of the service.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// How the service answers POSTs to `path` from now on.
    pub fn respond(&self, path: &str, respond: Respond) {
        self.shared.answers.lock().unwrap().insert(path.to_owned(), respond);
    }

    /// The next request, within 20 s.
    pub async fn next(&self) -> Received {
        self.next_within(Duration::from_secs(20)).await.expect("the service got a request in time")
    }

    pub async fn next_within(&self, wait: Duration) -> Option<Received> {
        let mut rx = self.received.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }

    /// The next `n` requests, in the order they came.
    pub async fn take(&self, n: usize) -> Vec<Received> {
        let mut all = Vec::with_capacity(n);
        for _ in 0..n {
            all.push(self.next().await);
        }
        all
    }

    /// Asserts that no request comes within `wait`.
    pub async fn expect_none(&self, wait: Duration) {
        if let Some(r) = self.next_within(wait).await {
            panic!("the service got an unexpected request: {} {}?{}", r.method, r.path, r.query);
        }
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

/// Calls back as the contract asks of services: again after a connection error or a 5xx (for
/// up to a minute), until aetr answers 200, 404 or 409.
async fn call_back(http: reqwest::Client, url: String, result: Option<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(20);
    loop {
        let mut request = http.post(&url);
        if let Some(result) = &result {
            request = request.body(result.clone());
        }
        match request.send().await {
            Ok(answer) if !answer.status().is_server_error() => return,
            _ if std::time::Instant::now() > deadline => return,
            _ => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let query = req.query_string().to_owned();
    let callback = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "aetr")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let mut received = Received {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        callback,
        hold: None,
    };
    let respond = shared.answers.lock().unwrap().get(req.path()).cloned();
    let respond = match respond {
        Some(Respond::Hold) => {
            let (tx, rx) = oneshot::channel();
            received.hold = Some(tx);
            let _ = shared.received.send(received);
            rx.await.unwrap_or(Respond::Status(202))
        }
        Some(Respond::CallBack(make)) => {
            let result = make(&received);
            let (http, url) = (shared.http.clone(), received.callback.clone());
            let _ = shared.received.send(received);
            tokio::spawn(call_back(http, url, result));
            Respond::Status(202)
        }
        other => {
            let _ = shared.received.send(received);
            other.unwrap_or(Respond::Status(202))
        }
    };
    let status = |s: u16| actix_web::http::StatusCode::from_u16(s).expect("a status");
    match respond {
        Respond::Status(s) => HttpResponse::build(status(s)).finish(),
        Respond::Body(s, body) => HttpResponse::build(status(s)).body(body),
        Respond::TooMany(after) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", after.to_string()))
            .finish(),
        Respond::Redirect(s, to) => {
            let to = format!("{to}?{}", req.query_string());
            HttpResponse::build(status(s)).insert_header(("Location", to)).finish()
        }
        Respond::Hold | Respond::CallBack(_) => HttpResponse::Accepted().finish(),
    }
}
