//! aetr's own PostgreSQL cluster, for when `DATABASE_URL` is unset.
//!
//! The cluster is made with the PostgreSQL binaries installed on the machine (on `PATH`, or
//! under `/usr/lib/postgresql/*/bin`), in a directory of aetr's, and listens only on a Unix
//! socket in that directory: no TCP port, and no other user can connect. Its data is kept, so
//! it survives restarts.
//!
//! `initdb` and `postgres` refuse to run as root, so when aetr runs as root the cluster runs as
//! the `postgres` user (which Debian's package creates).
//!
//! A watchdog process stops the cluster if aetr dies without stopping it (`kill -9`, a panic):
//! it holds the read end of a pipe whose write end only aetr holds, and stops the cluster when
//! the pipe closes. A clean exit stops the cluster itself and then ends the watchdog.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// What aetr prints when it finds no PostgreSQL to run.
pub const NO_BINARIES: &str = "no PostgreSQL binaries found (looked on PATH and in \
/usr/lib/postgresql/*/bin): install them with `apt-get install postgresql`, or set DATABASE_URL \
to a PostgreSQL server";

/// The port in the socket's name (`.s.PGSQL.5432`). Nothing listens on TCP.
const PORT: u16 = 5432;
/// The superuser that `initdb` makes.
const SUPERUSER: &str = "postgres";
/// A Unix socket's path must fit in 108 bytes.
const MAX_SOCKET_PATH: usize = 100;
/// How long to wait for the cluster to start or stop.
const PG_CTL_WAIT_SECONDS: u32 = 60;
/// How long to wait for a cluster left running by an aetr that died to be stopped by its
/// watchdog.
const STALE_CLUSTER_WAIT: Duration = Duration::from_secs(15);

/// What happens to the cluster's directory when aetr stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The data is kept for the next start.
    Data,
    /// The directory is removed (throwaway clusters, for tests).
    Nothing,
}

/// A running cluster. [`Cluster::stop`] stops it; if aetr dies first, the watchdog does.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    socket_dir: PathBuf,
    owner: Option<Owner>,
    watchdog: Option<Child>,
}

/// The user the cluster runs as, when aetr runs as root.
#[derive(Debug, Clone)]
struct Owner {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl Cluster {
    /// Starts the cluster in `dir`, making it first if it is new. Blocks until it accepts
    /// connections.
    pub fn start(dir: &Path, keep: Keep) -> Result<Cluster> {
        let bin = find_binaries().ok_or_else(|| anyhow!(NO_BINARIES))?;
        let owner = if running_as_root() { Some(Owner::postgres()?) } else { None };
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the directory {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let mut cluster =
            Cluster { socket_dir: socket_dir_for(&dir), dir, bin, owner, watchdog: None };
        cluster.prepare_dir(&cluster.dir)?;
        if cluster.socket_dir != cluster.dir {
            std::fs::create_dir_all(&cluster.socket_dir)?;
            cluster.prepare_dir(&cluster.socket_dir)?;
        }
        if !cluster.dir.join("PG_VERSION").exists() {
            tracing::info!(dir = %cluster.dir.display(), "making a new PostgreSQL cluster");
            let mut initdb = cluster.command("initdb");
            initdb.arg("-D").arg(&cluster.dir).args(["-U", SUPERUSER, "-A", "trust"]);
            initdb.args(["-E", "UTF8", "--no-locale"]);
            run(initdb, "initdb")?;
        }
        cluster.wait_for_stale()?;
        // The watchdog starts first, so that no moment passes with a cluster and no watchdog.
        cluster.watchdog = Some(cluster.spawn_watchdog(keep)?);
        let options = format!("-h '' -k {} -p {PORT}", sh_quote(&cluster.socket_dir));
        let mut start = cluster.pg_ctl("start");
        start.arg("-l").arg(cluster.dir.join("postgres.log")).arg("-o").arg(options);
        run(start, "starting PostgreSQL (its log is postgres.log in the cluster's directory)")?;
        tracing::info!(dir = %cluster.dir.display(), "embedded PostgreSQL started");
        Ok(cluster)
    }

    /// The connection settings for database `dbname`, as the superuser.
    pub fn pg_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config.host_path(&self.socket_dir).port(PORT).user(SUPERUSER).dbname(dbname);
        config
    }

    /// The same settings as a connection string in `key=value` form, for `DATABASE_URL`.
    pub fn connection_string(&self, dbname: &str) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host={} port={PORT} user={SUPERUSER} dbname={}",
            quote(&self.socket_dir.to_string_lossy()),
            quote(dbname)
        )
    }

    /// The cluster's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the cluster (fast shutdown: sessions are ended, and the data is flushed).
    pub fn stop(mut self) -> Result<()> {
        let mut stop = self.pg_ctl("stop");
        stop.args(["-m", "fast"]);
        let outcome = run(stop, "stopping PostgreSQL");
        if let Some(mut watchdog) = self.watchdog.take() {
            // Its work is done; ending it also keeps it from removing a kept directory.
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        outcome?;
        tracing::info!(dir = %self.dir.display(), "embedded PostgreSQL stopped");
        Ok(())
    }

    /// Makes `dir` the cluster user's own, private directory.
    fn prepare_dir(&self, dir: &Path) -> Result<()> {
        if let Some(owner) = &self.owner {
            std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid))
                .with_context(|| format!("cannot give {} to the postgres user", dir.display()))?;
            let mut probe = self.command_at(Path::new("/bin/sh"));
            probe.args(["-c", "cd \"$1\" && test -w \"$1\"", "sh"]).arg(dir);
            if !probe.status().is_ok_and(|s| s.success()) {
                bail!(
                    "aetr runs as root, so its PostgreSQL runs as the postgres user, who cannot \
                     reach {}: set AETR_DATA_DIR to a directory that user can reach (outside \
                     /root), or set DATABASE_URL",
                    dir.display()
                );
            }
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    /// A cluster that an earlier aetr left running (it died, and its watchdog is stopping it)
    /// is waited for; one that keeps running belongs to somebody else.
    fn wait_for_stale(&self) -> Result<()> {
        let deadline = Instant::now() + STALE_CLUSTER_WAIT;
        while self.is_running() {
            if Instant::now() > deadline {
                bail!(
                    "a PostgreSQL server is already running in {dir}: is another aetr server \
                     using this AETR_DATA_DIR? Stop that one, or stop the cluster with \
                     `pg_ctl stop -D {dir}`",
                    dir = self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn is_running(&self) -> bool {
        // `pg_ctl status` exits 0 when a server runs in the directory, 3 when none does.
        let mut status = self.command("pg_ctl");
        status.arg("status").arg("-D").arg(&self.dir).stdout(Stdio::null()).stderr(Stdio::null());
        status.status().is_ok_and(|s| s.success())
    }

    fn spawn_watchdog(&self, keep: Keep) -> Result<Child> {
        const SCRIPT: &str = r#"trap '' INT TERM HUP
while read -r _; do :; done
"$1" stop -D "$2" -m fast -w >/dev/null 2>&1
if [ "$3" = remove ]; then rm -rf "$2"; fi"#;
        let mut sh = self.command_at(Path::new("/bin/sh"));
        sh.args(["-c", SCRIPT, "aetr-pg-watchdog"]).arg(self.bin.join("pg_ctl")).arg(&self.dir);
        sh.arg(if keep == Keep::Nothing { "remove" } else { "keep" });
        sh.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
        sh.spawn().context("cannot start the embedded PostgreSQL's watchdog")
    }

    /// `pg_ctl <action>` on this cluster, waiting for it to finish.
    fn pg_ctl(&self, action: &str) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.arg(action).arg("-D").arg(&self.dir).args(["-w", "-t"]);
        cmd.arg(PG_CTL_WAIT_SECONDS.to_string());
        cmd
    }

    /// A PostgreSQL program, run as the cluster's user.
    fn command(&self, program: &str) -> Command {
        self.command_at(&self.bin.join(program))
    }

    fn command_at(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir("/").env("LC_ALL", "C").stdin(Stdio::null());
        if let Some(owner) = &self.owner {
            cmd.uid(owner.uid).gid(owner.gid).env("HOME", &owner.home).env("USER", "postgres");
        }
        cmd
    }
}

impl Owner {
    fn postgres() -> Result<Owner> {
        const MISSING: &str = "aetr runs as root, and PostgreSQL will not: it runs its cluster \
            as the postgres user, and there is none. Install PostgreSQL with `apt-get install \
            postgresql` (which makes that user), or set DATABASE_URL";
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let fields: Vec<&str> = passwd
            .lines()
            .find(|l| l.starts_with("postgres:"))
            .ok_or_else(|| anyhow!(MISSING))?
            .split(':')
            .collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u32>().ok());
        match (number(2), number(3), fields.get(5)) {
            (Some(uid), Some(gid), Some(home)) => Ok(Owner { uid, gid, home: PathBuf::from(home) }),
            _ => bail!("the postgres user's line in /etc/passwd cannot be read"),
        }
    }
}

/// The directory of `pg_ctl`, `initdb` and `postgres`: on `PATH`, or the newest version under
/// `/usr/lib/postgresql`.
fn find_binaries() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path: Vec<PathBuf> = std::env::split_paths(&path).collect();
    find_binaries_in(&on_path, Path::new("/usr/lib/postgresql"))
}

/// The first of `on_path` that has the binaries, or else the newest `<lib>/<version>/bin`.
pub fn find_binaries_in(on_path: &[PathBuf], lib: &Path) -> Option<PathBuf> {
    let has_all =
        |dir: &Path| ["pg_ctl", "initdb", "postgres"].iter().all(|p| dir.join(p).exists());
    if let Some(dir) = on_path.iter().find(|d| has_all(d)) {
        return Some(dir.clone());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_all(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    // The owner of /proc/self is this process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The directory for the cluster's socket: its own directory when the socket's path fits, or
/// one in the temporary directory named after it.
fn socket_dir_for(dir: &Path) -> PathBuf {
    if dir.join(format!(".s.PGSQL.{PORT}.lock")).as_os_str().len() <= MAX_SOCKET_PATH {
        return dir.to_path_buf();
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    dir.hash(&mut hasher);
    PathBuf::from(format!("/tmp/aetr-pg-{:016x}", hasher.finish()))
}

/// Runs a command to its end; a failure says what failed, with the end of its output.
fn run(mut cmd: Command, what: &str) -> Result<()> {
    let Output { status, stdout, stderr } =
        cmd.output().with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(if stderr.is_empty() { &stdout } else { &stderr });
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
    bail!("{what} failed ({status}): {tail}")
}

/// Quotes a path for the shell that `pg_ctl` hands the server's options to.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}
