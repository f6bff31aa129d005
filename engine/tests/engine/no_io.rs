//! The engine must stay free of I/O: no async runtime, database, HTTP client or server.

use std::process::Command;

#[test]
fn the_engine_depends_on_no_io_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "aetr-engine", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"boa_engine"), "the listing is real: {crates:?}");
    let forbidden = [
        "tokio",
        "mio",
        "postgres",
        "tokio-postgres",
        "deadpool-postgres",
        "reqwest",
        "hyper",
        "actix-web",
        "actix-rt",
        "async-std",
        "socket2",
        "refinery",
    ];
    let found: Vec<&&str> = crates.iter().filter(|c| forbidden.contains(c)).collect();
    assert!(found.is_empty(), "the engine depends on I/O crates: {found:?}");
}
