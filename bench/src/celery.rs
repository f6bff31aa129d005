//! Celery, the peer, in the same run: a private virtualenv with pinned packages from PyPI, a
//! Redis broker and result backend (the one on 127.0.0.1:6379 when it answers, else Debian's
//! `redis-server` started on a private port), and a worker per pool tried.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::server::{free_port, workspace_root};

/// What the virtualenv holds, pinned.
const PACKAGES: &[&str] = &["celery[redis]==5.7.0", "requests==2.32.3"];
/// The Redis database the bench uses (and empties) on a shared Redis.
const REDIS_DB: u8 = 13;

/// One pool's figures.
#[derive(Debug, Clone)]
pub struct PoolFigures {
    pub pool: String,
    pub wide_actions_per_s: f64,
    pub deep_seconds: f64,
}

pub struct Celery {
    python: PathBuf,
    celery: PathBuf,
    redis_url: String,
    redis_port: u16,
    /// A Redis the bench started, stopped on drop.
    own_redis: Option<Child>,
    logs: PathBuf,
}

impl Celery {
    /// Makes the virtualenv (once; it is kept under target/) and finds or starts Redis.
    pub fn prepare(logs: &Path) -> Result<Celery> {
        let venv = workspace_root().join("target/bench-venv");
        let python = virtualenv(&venv, PACKAGES, "import celery, redis, requests")?;
        let (redis_port, own_redis) = if redis_ping(6379) {
            (6379, None)
        } else {
            let port = free_port()?;
            (port, Some(start_redis(port)?))
        };
        Ok(Celery {
            celery: venv.join("bin/celery"),
            python,
            redis_url: format!("redis://127.0.0.1:{redis_port}/{REDIS_DB}"),
            redis_port,
            own_redis,
            logs: logs.to_owned(),
        })
    }

    /// Runs wide (`wide` tasks under a chord) and deep (a chain of `deep`) on a worker with
    /// `pool` (`prefork:2`, `threads:8`).
    pub fn measure(
        &self,
        pool: &str,
        service: &str,
        wide: usize,
        deep: usize,
    ) -> Result<PoolFigures> {
        let (kind, concurrency) = pool.split_once(':').context("a pool is kind:concurrency")?;
        redis_command(self.redis_port, &format!("SELECT {REDIS_DB}\r\nFLUSHDB\r\n"))?;
        let log = std::fs::File::create(self.logs.join(format!("celery-{kind}.log")))?;
        let mut worker = Command::new(&self.celery);
        worker
            .current_dir(workspace_root().join("bench/celery"))
            .env("BENCH_REDIS_URL", &self.redis_url)
            .args([
                "-A",
                "bench_celery",
                "worker",
                "--loglevel=WARNING",
                "-P",
                kind,
                "-c",
                concurrency,
            ])
            .args(["--without-gossip", "--without-mingle", "--without-heartbeat"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let worker = Worker(worker.spawn().context("cannot start a Celery worker")?);
        let wide_s = self.drive("wide", wide, service)?;
        let deep_s = self.drive("deep", deep, service)?;
        drop(worker);
        Ok(PoolFigures {
            pool: pool.to_owned(),
            wide_actions_per_s: wide as f64 / wide_s,
            deep_seconds: deep_s,
        })
    }

    fn drive(&self, scenario: &str, n: usize, service: &str) -> Result<f64> {
        let out = Command::new(&self.python)
            .current_dir(workspace_root().join("bench/celery"))
            .env("BENCH_REDIS_URL", &self.redis_url)
            .args(["bench_celery.py", scenario, &n.to_string(), service])
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run bench_celery.py")?;
        if !out.status.success() {
            bail!("Celery's {scenario} failed ({})", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line: Value = serde_json::from_str(text.lines().last().unwrap_or_default())
            .with_context(|| format!("bench_celery.py printed {text}"))?;
        line["seconds"].as_f64().context("no seconds in Celery's answer")
    }
}

impl Drop for Celery {
    fn drop(&mut self) {
        if let Some(mut redis) = self.own_redis.take() {
            let _ = redis.kill();
            let _ = redis.wait();
        }
    }
}

/// A Celery worker and its pool's processes (one process group), ended on drop.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.0.wait();
    }
}

fn redis_ping(port: u16) -> bool {
    redis_command(port, "PING\r\n").is_ok_and(|answer| answer.starts_with("+PONG"))
}

/// Sends inline commands to Redis; returns what it answered.
fn redis_command(port: u16, commands: &str) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(commands.as_bytes())?;
    let mut answer = vec![0; 256];
    let n = stream.read(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer[..n]).into_owned())
}

fn start_redis(port: u16) -> Result<Child> {
    if Command::new("redis-server").arg("--version").output().is_err() {
        apt_install(&["redis-server"])?;
    }
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start redis-server")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis_ping(port) {
        if Instant::now() > deadline {
            bail!("redis-server did not answer on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

/// The Python of a virtualenv in `dir` that holds `packages` (pinned, from PyPI): made once, and
/// kept while `ready` (a Python script) runs in it. Installs Debian's python3-venv if need be.
pub fn virtualenv(dir: &Path, packages: &[&str], ready: &str) -> Result<PathBuf> {
    let python = dir.join("bin/python");
    let is_ready = || {
        Command::new(&python)
            .args(["-c", ready])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if is_ready() {
        return Ok(python);
    }
    eprintln!("bench: making a virtualenv in {}", dir.display());
    let made = Command::new("python3").arg("-m").arg("venv").arg(dir).status();
    if !made.is_ok_and(|s| s.success()) {
        apt_install(&["python3", "python3-venv"])?;
        run(Command::new("python3").arg("-m").arg("venv").arg(dir), "python3 -m venv")?;
    }
    let mut pip = Command::new(dir.join("bin/pip"));
    pip.args(["install", "-q"]).args(packages);
    run(&mut pip, &format!("pip install {}", packages.join(" ")))?;
    if !is_ready() {
        bail!("the virtualenv in {} is not ready after pip install", dir.display());
    }
    Ok(python)
}

/// Installs Debian packages (as root; sudo otherwise).
fn apt_install(packages: &[&str]) -> Result<()> {
    eprintln!("bench: installing {} from Debian's packages", packages.join(" "));
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut cmd = if root { Command::new("apt-get") } else { Command::new("sudo") };
        if !root {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut apt(&["update", "-qq"]), "apt-get update")?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(packages);
    run(&mut install, "apt-get install")
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
