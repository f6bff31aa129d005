//! The `aetr` binary under test: built by cargo in the bench's own profile, started on a free
//! port against a fresh database, and measured (its peak RSS) while it runs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The workspace's root (the bench's manifest is in `bench/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds `aetr` in the profile the bench itself was built in, and returns its path (beside the
/// bench's own executable).
pub fn build_aetr() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.current_dir(workspace_root()).args(["build", "-p", "aetr-server", "--bin", "aetr"]);
    // What `cargo run` tells the bench about itself: some build scripts (ring's) watch
    // CARGO_MANIFEST_DIR, and would be rerun, with all that depends on them, on every switch
    // between `cargo run -p aetr-bench` and this build.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let own = ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_"];
        if own.iter().any(|prefix| name.starts_with(prefix)) {
            build.env_remove(name.as_ref());
        }
    }
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build.status().context("cannot run cargo to build aetr")?;
    if !status.success() {
        bail!("cargo could not build aetr ({status})");
    }
    let exe = std::env::current_exe().context("where is the bench's executable?")?;
    let aetr = exe.with_file_name("aetr");
    if !aetr.exists() {
        bail!("aetr was built, but is not at {}", aetr.display());
    }
    Ok(aetr)
}

/// A running `aetr server`. Dropping it kills it.
pub struct Server {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts `aetr server` on `database_url`, with `settings` in its environment and its log
    /// in `log`, and waits until it is
    /// ready (its `/readyz` answers 200).
    pub async fn start(
        aetr: &PathBuf,
        database_url: &str,
        settings: &[(&str, &str)],
        log: PathBuf,
    ) -> Result<Server> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(aetr);
        cmd.arg("server");
        for (key, _) in std::env::vars() {
            if key.starts_with("AETR_") {
                cmd.env_remove(key);
            }
        }
        let data_dir = std::env::temp_dir().join(format!("aetr-bench-data-{}", std::process::id()));
        cmd.env("DATABASE_URL", database_url)
            .env("AETR_BIND", format!("127.0.0.1:{port}"))
            .env("AETR_DATA_DIR", &data_dir)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()))
            .envs(settings.iter().copied());
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot write the server's log to {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file);
        let child = cmd.spawn().with_context(|| format!("cannot start {}", aetr.display()))?;
        let mut server = Server { child, url, log };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("aetr server exited at start ({status}); its log: {}", self.log.display());
            }
            let ready = http.get(format!("{}/readyz", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("aetr server was not ready within 90 s; its log: {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn api(&self) -> String {
        format!("{}/api/v1", self.url)
    }

    /// Fails if the server has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("aetr server exited ({status}); its log: {}", self.log.display());
        }
        Ok(())
    }

    /// Resets the kernel's record of the server's peak RSS (Linux's `clear_refs`, value 5), so
    /// that [`Server::peak_rss_mb`] covers what follows. False where that is not allowed.
    pub fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").is_ok()
    }

    /// The server process's peak resident set (VmHWM), in MiB. Its script workers are
    /// separate processes, not counted here.
    pub fn peak_rss_mb(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kb / 1024.0)
    }

    /// SIGTERM, then waits for the exit (a kill after 30 s).
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!("aetr server did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
