//! The real `aetr` binary, run as a server process: started on a free port, its log kept (and
//! printed when a test fails), stopped by signal or killed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long a server may take to start listening (a new embedded cluster runs initdb).
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `aetr server` on a free port with these environment variables (and no others of
    /// aetr's from the test's environment), and waits until it listens.
    pub fn start(env: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aetr"));
        cmd.arg("server");
        // A test that restarts a server on the same port (for its callback URLs) sets AETR_BIND.
        if !env.iter().any(|(key, _)| *key == "AETR_BIND") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        for (key, _) in std::env::vars() {
            if key.starts_with("AETR_") || key == "DATABASE_URL" {
                cmd.env_remove(key);
            }
        }
        cmd.env("RUST_LOG", "info").envs(env.iter().copied());
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start aetr server");
        let log = Arc::new(Mutex::new(String::new()));
        let (listening, addr) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..].split_whitespace().next();
                    let _ = listening.send(url.unwrap_or_default().to_owned());
                }
                let mut log = lines.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut server = ServerProcess { child, base_url: String::new(), log };
        match addr.recv_timeout(START_TIMEOUT) {
            Ok(url) => server.base_url = url,
            Err(_) => panic!("aetr server did not start listening:\n{}", server.log()),
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends a signal (`TERM`, `INT`) and waits for the process to exit.
    pub fn stop_with(mut self, signal: &str) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for aetr") {
                // The log thread ends with the process's standard error.
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.log());
            }
            assert!(std::time::Instant::now() < deadline, "aetr did not exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- aetr server's log ---\n{}", self.log());
        }
    }
}
