//! `aetr server` without `DATABASE_URL`: its own PostgreSQL cluster under `AETR_DATA_DIR`,
//! kept across restarts and stopped with the server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aetr_server::db::embedded::{find_binaries_in, NO_BINARIES};
use serde_json::{json, Value};

use crate::support::server::ServerProcess;

/// A data directory of the test's own, removed at the end.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> DataDir {
        let dir = std::env::temp_dir().join(format!("aetr-data-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        DataDir(dir)
    }

    fn start(&self) -> ServerProcess {
        ServerProcess::start(&[("AETR_DATA_DIR", self.0.to_str().unwrap())])
    }

    /// The cluster's lock file, which exists while PostgreSQL runs.
    fn postmaster_pid(&self) -> PathBuf {
        self.0.join("pg").join("postmaster.pid")
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn steps(server: &ServerProcess) -> Value {
    let url = format!("{}/api/v1/steps", server.base_url);
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn the_server_runs_its_own_postgresql_keeps_its_data_and_stops_it_on_exit() {
    let data = DataDir::new();
    let server = data.start();
    assert!(data.postmaster_pid().exists(), "the cluster runs under AETR_DATA_DIR/pg");
    let step = json!({"name": "kept", "stepType": "Action", "action": {"type": "no-op"}});
    let made = reqwest::Client::new()
        .post(format!("{}/api/v1/steps", server.base_url))
        .json(&step)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);

    let (status, log) = server.stop_with("TERM");
    assert!(status.success(), "SIGTERM exits 0: {status}\n{log}");
    assert!(log.contains("embedded PostgreSQL stopped"), "{log}");
    assert!(!data.postmaster_pid().exists(), "the cluster was stopped");

    let server = data.start();
    let listed = steps(&server).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "the data survived the restart: {listed}");
    assert_eq!(listed[0]["name"], "kept");
    let (status, log) = server.stop_with("INT");
    assert!(status.success(), "SIGINT exits 0: {status}\n{log}");
    assert!(!data.postmaster_pid().exists());
}

#[tokio::test]
async fn a_killed_server_leaves_no_postgresql_behind_and_starts_again() {
    let data = DataDir::new();
    let server = data.start();
    let (status, _) = server.stop_with("KILL");
    assert!(!status.success());
    // The watchdog stops the cluster when the server is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while data.postmaster_pid().exists() {
        assert!(Instant::now() < deadline, "the cluster outlived its server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = data.start();
    assert_eq!(steps(&server).await, json!([]));
    let (status, _) = server.stop_with("TERM");
    assert!(status.success());
}

#[test]
fn binaries_are_found_on_path_or_under_usr_lib_postgresql() {
    let root = std::env::temp_dir().join(format!("aetr-bins-{}", uuid::Uuid::new_v4().simple()));
    let on_path = root.join("bin");
    let lib = root.join("lib");
    let fake = |dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        for program in ["pg_ctl", "initdb", "postgres"] {
            std::fs::write(dir.join(program), "").unwrap();
        }
    };
    std::fs::create_dir_all(&on_path).unwrap();
    assert_eq!(find_binaries_in(std::slice::from_ref(&on_path), &lib), None, "none anywhere");

    fake(&lib.join("13").join("bin"));
    fake(&lib.join("15").join("bin"));
    std::fs::create_dir_all(lib.join("16").join("bin")).unwrap(); // an incomplete install
    assert_eq!(
        find_binaries_in(std::slice::from_ref(&on_path), &lib),
        Some(lib.join("15").join("bin"))
    );

    fake(&on_path);
    assert_eq!(
        find_binaries_in(std::slice::from_ref(&on_path), &lib),
        Some(on_path.clone()),
        "PATH first"
    );
    std::fs::remove_dir_all(&root).unwrap();

    assert!(!NO_BINARIES.contains('\n'), "one line");
    assert!(
        NO_BINARIES.contains("apt-get install postgresql") && NO_BINARIES.contains("DATABASE_URL")
    );
}
