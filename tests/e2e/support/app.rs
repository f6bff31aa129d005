//! `TestApp`: a real `aetr server` on a fresh database, and typed helpers for its API.

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use super::postgres::{drop_database, fresh_database, postgres};
use super::server::ServerProcess;

pub struct TestApp {
    /// `None` only while it is dropped.
    server: Option<ServerProcess>,
    pub http: reqwest::Client,
    database: Option<String>,
    /// The server's environment, for a restart.
    env: Vec<(String, String)>,
}

/// An answer: its status, headers and body (JSON when it parses, else a JSON string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `{"errors":[...]}` texts.
    pub fn errors(&self) -> Vec<String> {
        let errors = self.body["errors"].as_array();
        let errors = errors.unwrap_or_else(|| panic!("not an error body: {:?}", self.body));
        errors.iter().map(|e| e.as_str().expect("an error text").to_owned()).collect()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self
    }

    pub fn id(&self) -> Uuid {
        let id = self.body["id"].as_str().unwrap_or_else(|| panic!("no id in {}", self.body));
        Uuid::parse_str(id).expect("a UUID")
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// With more environment variables for the server.
    pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        let database = fresh_database().await;
        let url = postgres().connection_string(&database);
        let mut all = vec![("DATABASE_URL", url.as_str())];
        all.extend_from_slice(env);
        let server = ServerProcess::start(&all);
        let env = all.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TestApp {
            server: Some(server),
            http: reqwest::Client::new(),
            database: Some(database),
            env,
        }
    }

    /// A server on a database that the test owns (`database_url`), which this app neither
    /// makes nor drops.
    pub fn on_database(database_url: &str, env: &[(&str, &str)]) -> TestApp {
        let mut all = vec![("DATABASE_URL", database_url)];
        all.extend_from_slice(env);
        let server = ServerProcess::start(&all);
        let env = all.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TestApp { server: Some(server), http: reqwest::Client::new(), database: None, env }
    }

    /// Another server on the same database and settings (but its own port): a replica.
    pub fn replica(&self) -> ServerProcess {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .filter(|(k, _)| k != "AETR_BIND")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ServerProcess::start(&env)
    }

    /// Kills the server (`kill -9`: it does nothing more) and starts another on the same
    /// database, on another port.
    pub fn crash_and_restart(&mut self) {
        let (status, log) = self.stop_and_restart("KILL");
        assert!(!status.success(), "killed, not exited:\n{log}");
    }

    /// Stops the server with a signal (`TERM`, `KILL`) and starts another on the same database
    /// and settings. Returns how the first exited, and its log.
    pub fn stop_and_restart(&mut self, signal: &str) -> (std::process::ExitStatus, String) {
        let stopped = self.stop(signal);
        self.start_again();
        stopped
    }

    /// Stops the server with a signal (`TERM`, `KILL`): how it exited, and its log.
    pub fn stop(&mut self, signal: &str) -> (std::process::ExitStatus, String) {
        self.server.take().expect("a running server").stop_with(signal)
    }

    /// Starts a server again after [`Self::stop`], on the same database and settings.
    pub fn start_again(&mut self) {
        let env: Vec<(&str, &str)> =
            self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.server = Some(ServerProcess::start(&env));
        // Pooled connections went to the stopped server.
        self.http = reqwest::Client::new();
    }

    /// From now on, every request of [`Self::send`] and its kin carries
    /// `Authorization: Bearer <token>`.
    pub fn use_token(&mut self, token: &str) {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {token}").parse().expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
        self.http = reqwest::Client::builder().default_headers(headers).build().expect("a client");
    }

    pub fn server(&self) -> &ServerProcess {
        self.server.as_ref().expect("the server runs until the app is dropped")
    }

    /// A connection to the app's database, for tests that look under the API.
    /// The server's `DATABASE_URL`.
    pub fn database_url(&self) -> String {
        let url = self.env.iter().find(|(k, _)| k == "DATABASE_URL").map(|(_, v)| v.clone());
        url.expect("the app has a DATABASE_URL")
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        let name = self.database.as_deref().expect("the app has its database");
        aetr_server::db::connect(&postgres().config(name))
            .await
            .expect("connect to the test database")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server().base_url)
    }

    /// Sends a request whose body, if any, is raw text.
    pub async fn send(&self, method: Method, path: &str, body: Option<String>) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.expect("aetr answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(body.to_string())).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PUT, path, Some(body.to_string())).await
    }

    // Typed helpers for the steps API. Each asserts success and returns what was made.

    /// `PUT /steps` with a fat tree: the root's id.
    pub async fn put_tree(&self, tree: &Value) -> Uuid {
        self.put("/api/v1/steps", tree).await.expect(200).id()
    }

    /// `POST /steps`: the new step's id.
    pub async fn create_step(&self, step: &Value) -> Uuid {
        self.post("/api/v1/steps", step).await.expect(201).id()
    }

    /// `GET /steps/{id}`: the fat tree.
    pub async fn tree(&self, id: Uuid) -> Value {
        self.get(&format!("/api/v1/steps/{id}")).await.expect(200).body
    }

    /// `GET /steps/{id}/slim`.
    pub async fn slim(&self, id: Uuid) -> Value {
        self.get(&format!("/api/v1/steps/{id}/slim")).await.expect(200).body
    }

    /// `POST /steps/{id}/children`, answered as it was.
    pub async fn set_children(&self, id: Uuid, children: &Value) -> Answer {
        self.post(
            &format!("/api/v1/steps/{id}/children"),
            &serde_json::json!({ "children": children }),
        )
        .await
    }
}

/// How long a test waits for a run to reach a state.
pub const RUN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

impl TestApp {
    // Typed helpers for runs and callbacks.

    /// `POST /runs/step/{id}` with `{input}`: the new run's id.
    pub async fn start_run(&self, step: Uuid, input: Value) -> Uuid {
        let answer = self
            .post(&format!("/api/v1/runs/step/{step}"), &serde_json::json!({ "input": input }))
            .await
            .expect(201);
        answer.id()
    }

    /// `GET /runs/{id}`: the whole tree.
    pub async fn run(&self, id: Uuid) -> Value {
        self.get(&format!("/api/v1/runs/{id}")).await.expect(200).body
    }

    /// Waits until the run is in `state`, and returns its whole tree. Fails at once if it ends
    /// in another terminal state.
    pub async fn wait_run(&self, id: Uuid, state: &str) -> Value {
        self.wait_root(id, state).await;
        self.run(id).await
    }

    /// Waits until the run is in `state`, polling its root alone, and returns the root.
    pub async fn wait_root(&self, id: Uuid, state: &str) -> Value {
        self.wait_root_for(id, state, RUN_DEADLINE).await
    }

    pub async fn wait_root_for(&self, id: Uuid, state: &str, wait: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let root = self.get(&format!("/api/v1/runs/{id}?depth=0")).await.expect(200).body;
            let now = root["state"].as_str().unwrap_or_default().to_owned();
            if now == state {
                return root;
            }
            let terminal = ["Complete", "Error", "Cancelled"].contains(&now.as_str());
            assert!(!terminal, "run {id} ended {now}, not {state}: {:#}", self.run(id).await);
            assert!(std::time::Instant::now() < deadline, "run {id} is still {now}: {root:#}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until the run's tree satisfies `ready`, and returns it.
    pub async fn wait_until(&self, id: Uuid, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + RUN_DEADLINE;
        loop {
            let run = self.run(id).await;
            if ready(&run) {
                return run;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {id}: {what} did not happen: {run:#}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// POSTs a raw body to an absolute URL (a callback URL that a service was given).
    pub async fn post_raw(&self, url: &str, body: impl Into<reqwest::Body>) -> Answer {
        let response = self.http.post(url).body(body).send().await.expect("aetr answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, headers, body }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The server first, so that no connection holds the database.
        drop(self.server.take());
        if let Some(database) = self.database.take() {
            drop_database(database);
        }
    }
}
