//! The command line: every option is a flag with a matching environment variable, documented
//! in `--help`, with defaults that work on a laptop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aetr_engine::Limits;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// aetr: a workflow-tree orchestrator for HTTP services.
///
/// A step tree's leaves are actions that POST to services; each service calls back with its
/// result, and the run moves on. JavaScript mappers and reducers shape the data between steps.
#[derive(Debug, Parser)]
#[command(name = "aetr", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// How logs are written to standard error: `text` for people, `json` for log collectors.
    #[arg(long, env = "AETR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

// One command is parsed, once: the size of the largest does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serves the REST API (under /api/v1) and the callback endpoint. Applies the database
    /// migrations first. Without DATABASE_URL it runs its own PostgreSQL cluster under
    /// AETR_DATA_DIR, and stops it on exit.
    Server(ServerArgs),
    /// Applies the database migrations and exits. `aetr server` applies them too, under the
    /// same advisory lock, so replicas that start together apply them once.
    Migrate(DatabaseArgs),
    /// Validates a whole nested step tree (the body of `PUT /api/v1/steps`) without a server:
    /// its shape, its scripts (compiled, not run), cycles and size limits. Every child must be
    /// defined in the file. Prints `{"id","nodes","depth"}`, or `{"errors":[...]}` and exits 1.
    Check {
        /// The tree's JSON file; `-` (the default) reads standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// Starts a run of a step tree, waits for it, and prints its result raw. Exit codes: 0
    /// Complete, 1 Error (the error on standard error), 3 Cancelled, 4 still running at
    /// --timeout, 2 a usage error.
    Run(crate::cli::run::RunArgs),
    /// Waits for a run and prints its result raw, with `aetr run`'s exit codes.
    Wait(crate::cli::run::WaitArgs),
    /// Step trees: put, get, list and remove them.
    #[command(subcommand)]
    Steps(crate::cli::steps::StepsCommand),
    /// Runs: list them, show one as a tree, follow its history, cancel or redrive it.
    #[command(subcommand)]
    Runs(crate::cli::runs::RunsCommand),
    /// Schedules: list them, add one, remove one.
    #[command(subcommand)]
    Schedules(crate::cli::schedules::SchedulesCommand),
    /// For a service written in shell: posts a result (or, with --fail, an error) to a callback
    /// URL, retrying connection errors and 5xx as the contract asks.
    Callback(crate::cli::callback::CallbackArgs),
    /// Makes a command a service: each POST is answered 202, the command runs with the body on
    /// its standard input, and its standard output is the result (exit 0) or its exit status
    /// and the end of its standard error the failure.
    ServeCommand(crate::cli::serve_command::ServeCommandArgs),
    /// A script worker: runs mappers and reducers for the `aetr server` that started it, over
    /// its standard input and output. Not for people.
    #[command(hide = true)]
    ScriptWorker(WorkerArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The address to serve on. Port 0 picks a free port (the log says which).
    #[arg(long, env = "AETR_BIND", default_value = "127.0.0.1:9999")]
    pub bind: SocketAddr,

    /// The URL at which services reach this server, for the callback URLs it hands out
    /// (default: `http://<bind>`). Required when binding an unspecified address such as 0.0.0.0,
    /// and behind a load balancer.
    #[arg(long, env = "AETR_PUBLIC_URL")]
    pub public_url: Option<String>,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// How long an action waits for its callback when it sets no `callbackTimeoutSeconds`, in
    /// seconds (default: 7 days). 0: wait for ever.
    #[arg(long, env = "AETR_CALLBACK_TIMEOUT_SECONDS", default_value_t = 7 * 24 * 3600,
          value_parser = clap::value_parser!(u64).range(0..=10 * 366 * 24 * 3600))]
    pub callback_timeout_seconds: u64,

    /// The most items a Map may have: a Map with more fails, naming this setting.
    #[arg(long, env = "AETR_MAX_MAP_ITEMS", default_value_t = aetr_engine::machine::DEFAULT_MAX_MAP_ITEMS,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_map_items: u32,

    #[command(flatten)]
    pub scripts: ScriptArgs,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub egress: EgressArgs,

    /// How many POSTs to services may be in flight at once.
    #[arg(long, env = "AETR_DISPATCH_CONCURRENCY", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub dispatch_concurrency: u32,

    /// How often, in milliseconds, the dispatcher looks for due work when nothing wakes it
    /// (work from other servers normally wakes it at once, by NOTIFY).
    #[arg(long, env = "AETR_POLL_INTERVAL_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub poll_interval_ms: u64,

    /// How long, in seconds, a stopping server (SIGTERM or SIGINT) waits for the POSTs and
    /// scripts in hand to finish. Work still in hand then is taken over by another server, or
    /// by this one when it starts again.
    #[arg(long, env = "AETR_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_timeout_seconds: u64,

    /// Delete runs that finished more than this many days ago, with their nodes, attempts and
    /// history (every server sweeps a minute apart, in small batches). Unset: keep them for
    /// ever.
    #[arg(long, env = "AETR_RETENTION_DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,

    /// A link to a run's trace in your tracing UI, with `{traceId}` where the run's trace id
    /// goes (such as `http://jaeger:16686/trace/{traceId}`): `GET /runs/{id}` and the run page
    /// show it.
    #[arg(long, env = "AETR_TRACE_URL")]
    pub trace_url: Option<String>,
}

/// Who may use the API.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// API tokens, comma-separated. When any token is set (here or in the file), every request
    /// under /api/v1 needs `Authorization: Bearer <token>`, except callbacks (their own token
    /// is their credential) and /api/v1/openapi.json.
    #[arg(long, env = "AETR_API_TOKENS", hide_env_values = true)]
    pub api_tokens: Option<Secret>,

    /// A file of API tokens, one per line (blank lines are skipped), used with AETR_API_TOKENS.
    #[arg(long, env = "AETR_API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,

    /// `/metrics` needs an API token too (it is open by default, like `/healthz`).
    #[arg(long, env = "AETR_METRICS_REQUIRE_TOKEN")]
    pub metrics_require_token: bool,
}

/// A value that is never shown: not in logs, not in `Debug`.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Where actions may POST (the SSRF guard; see the README's "Security" section).
#[derive(Debug, Clone, Args)]
pub struct EgressArgs {
    /// Hosts, *.domains, IPs, CIDRs or http(s) URL prefixes that actions may POST to,
    /// comma-separated. Empty: any that the deny list does not refuse.
    #[arg(long, env = "AETR_ACTION_ALLOW", default_value = "")]
    pub action_allow: String,

    /// Hosts, *.domains, IPs, CIDRs or http(s) URL prefixes that actions may not POST to,
    /// comma-separated, on top of the defaults: link-local (169.254.0.0/16, fe80::/10), the
    /// cloud metadata addresses, 0.0.0.0/8 and aetr's own address. Deny wins over allow.
    #[arg(long, env = "AETR_ACTION_DENY", default_value = "")]
    pub action_deny: String,

    /// How many redirects an action's POST follows, each checked against the rules (0: none;
    /// a 3xx answer fails the node).
    #[arg(long, env = "AETR_ACTION_MAX_REDIRECTS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub action_max_redirects: u32,

    /// A proxy for every action's POST (an http:// or https:// URL). System proxy
    /// settings are ignored. Through a proxy, host names are resolved by the proxy, so only
    /// URLs as written are checked against the rules.
    #[arg(long, env = "AETR_ACTION_PROXY")]
    pub action_proxy: Option<String>,
}

/// The script workers: processes that run mappers and reducers, each with its own limits.
#[derive(Debug, Clone, Args)]
pub struct ScriptArgs {
    /// How many script worker processes run mappers and reducers (default: the number of
    /// cores).
    #[arg(long, env = "AETR_SCRIPT_WORKERS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub script_workers: Option<u32>,

    /// The longest that one mapper or reducer call may run, in milliseconds (10 to 30,000). A
    /// call that runs longer has its worker killed (and replaced), and fails its node. A
    /// script's node is leased for twice this and 10 s: if its server dies, another runs the
    /// script again after that.
    #[arg(long, env = "AETR_SCRIPT_TIMEOUT_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(10..=30_000))]
    pub script_timeout_ms: u64,

    /// The address space of each script worker, in MiB (at least 128): its code, stacks and
    /// the scripts' memory. A call that needs more fails its node ("out of memory").
    #[arg(long, env = "AETR_SCRIPT_MEMORY_MB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(128..=65_536))]
    pub script_memory_mb: u64,

    /// How many calls a script worker runs before it is replaced by a fresh one.
    #[arg(long, env = "AETR_SCRIPT_WORKER_CALLS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub script_worker_calls: u64,

    /// How much CPU time, in seconds, a script worker uses before it is replaced by a fresh
    /// one.
    #[arg(long, env = "AETR_SCRIPT_WORKER_CPU_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub script_worker_cpu_seconds: u64,
}

/// What `aetr server` tells each script worker that it starts.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The version of the protocol that the server speaks: a worker refuses any other.
    #[arg(long)]
    pub protocol: u32,

    /// The worker's address space limit (RLIMIT_AS), in MiB.
    #[arg(long)]
    pub memory_mb: u64,

    /// The worker's CPU time limit (RLIMIT_CPU), in seconds.
    #[arg(long)]
    pub cpu_seconds: u64,

    /// The longest result that a call may return, in bytes.
    #[arg(long)]
    pub max_result_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The PostgreSQL database to use, as a URL (postgres://user@host:5432/db) or as
    /// `key=value` pairs. When unset, aetr runs its own cluster under AETR_DATA_DIR, from the
    /// PostgreSQL binaries installed on this machine.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where aetr keeps its own files: the embedded PostgreSQL cluster is in `<dir>/pg`.
    #[arg(long, env = "AETR_DATA_DIR", default_value = "./.aetr")]
    pub data_dir: PathBuf,

    /// The most database connections this server holds at once.
    #[arg(long, env = "AETR_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub db_pool_size: u32,

    /// How long a request waits for a free database connection, and for a new connection to
    /// open, in milliseconds. After that it is answered 503.
    #[arg(long, env = "AETR_DB_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub db_timeout_ms: u64,

    /// The longest that one SQL statement may run, in milliseconds (0: no limit). Migrations
    /// are not bounded.
    #[arg(long, env = "AETR_DB_STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    pub db_statement_timeout_ms: u64,
}

impl DatabaseArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.db_timeout_ms)
    }
}

/// Limits on what the API accepts. Node counts are after reuse is expanded.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// The most nodes in a step tree, with reused steps counted each time they appear.
    #[arg(long, env = "AETR_MAX_NODES", default_value_t = Limits::default().max_nodes)]
    pub max_nodes: u64,

    /// The most levels below a tree's root.
    #[arg(long, env = "AETR_MAX_DEPTH", default_value_t = Limits::default().max_depth)]
    pub max_depth: u32,

    /// The most children of one step.
    #[arg(long, env = "AETR_MAX_CHILDREN", default_value_t = Limits::default().max_children)]
    pub max_children: usize,

    /// The most bytes in one mapper or reducer script.
    #[arg(long, env = "AETR_MAX_SCRIPT_BYTES", default_value_t = Limits::default().max_script_bytes)]
    pub max_script_bytes: usize,

    /// The most characters in a step's name.
    #[arg(long, env = "AETR_MAX_NAME_CHARS", default_value_t = Limits::default().max_name_chars)]
    pub max_name_chars: usize,

    /// The most bytes in an action's URL.
    #[arg(long, env = "AETR_MAX_URL_BYTES", default_value_t = Limits::default().max_url_bytes)]
    pub max_url_bytes: usize,

    /// The most headers on one action.
    #[arg(long, env = "AETR_MAX_HEADERS", default_value_t = Limits::default().max_headers)]
    pub max_headers: usize,

    /// The largest body of a step definition request (`PUT /steps` and the others), in bytes.
    #[arg(long, env = "AETR_MAX_DEFINITION_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_definition_bytes: usize,

    /// The largest callback body (a result or an error), and the largest answer of a sync
    /// action, in bytes.
    #[arg(long, env = "AETR_MAX_CALLBACK_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_callback_bytes: usize,

    /// The largest body of `POST /runs/step/{stepId}` (the run's input), in bytes.
    #[arg(long, env = "AETR_MAX_INPUT_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_input_bytes: usize,

    /// The largest result of one mapper or reducer call, in bytes (JSON text). A larger one
    /// fails its node.
    #[arg(long, env = "AETR_MAX_SCRIPT_RESULT_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_script_result_bytes: usize,

    /// The most bytes in a request's headers (names and values). A request with more gets 431.
    /// Whatever this says, requests whose head is over 128 KiB are refused by the HTTP layer.
    #[arg(long, env = "AETR_MAX_HEADER_BYTES", default_value_t = 32 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=128 * 1024))]
    pub max_header_bytes: u64,
}

impl LimitArgs {
    pub fn tree_limits(&self) -> Limits {
        Limits {
            max_nodes: self.max_nodes,
            max_depth: self.max_depth,
            max_children: self.max_children,
            max_script_bytes: self.max_script_bytes,
            max_name_chars: self.max_name_chars,
            max_url_bytes: self.max_url_bytes,
            max_headers: self.max_headers,
        }
    }
}
