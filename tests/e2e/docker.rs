//! `docker/`: the image (`Dockerfile`) and aetr with PostgreSQL (`docker-compose.yml`). No
//! Docker engine runs where the tests run, so the image is not built here: these tests read the
//! files (the compose file with a YAML parser) and check what the image and the stack promise.
//! Each check returns every problem it finds, named; the last test breaks the files on purpose
//! and sees each check notice.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

const DOCKERFILE: &str = "docker/Dockerfile";
const DOCKERIGNORE: &str = "docker/Dockerfile.dockerignore";
const COMPOSE: &str = "docker/docker-compose.yml";
/// The cargo command that builds the image's binary: the README's build, held to the lock file.
const CARGO_BUILD: &str = "cargo build --release --locked -p aetr-server";
/// aetr's default AETR_SHUTDOWN_TIMEOUT_SECONDS: how long a stopping server lets work finish.
const SHUTDOWN_SECONDS: u64 = 30;

/// The repository's root, which is the image's build context.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    let full = repo().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n- {}", problems.join("\n- "));
}

#[test]
fn the_dockerfile_builds_aetr_from_the_lock_file_in_a_build_stage() {
    assert_none(DOCKERFILE, build_problems(&read(DOCKERFILE)));
}

#[test]
fn every_path_the_dockerfile_copies_is_in_the_repository_and_the_build_context() {
    let members = workspace_members(&read("Cargo.toml"));
    assert!(members.contains(&"server".to_owned()), "no workspace members found: {members:?}");
    assert_none(
        DOCKERFILE,
        copy_problems(&read(DOCKERFILE), &read(DOCKERIGNORE), &repo(), &members),
    );
}

#[test]
fn the_image_runs_aetr_server_as_a_user_that_is_not_root_with_a_healthcheck_on_readyz() {
    assert_none(DOCKERFILE, runtime_problems(&read(DOCKERFILE)));
}

#[test]
fn the_compose_file_runs_aetr_after_a_healthy_postgres() {
    assert_none(COMPOSE, compose_problems(&read(COMPOSE), &repo()));
}

/// Each change breaks a file as someone might, and the check must say what broke.
#[test]
fn the_checks_name_what_a_broken_file_gets_wrong() {
    let (dockerfile, ignore, compose) = (read(DOCKERFILE), read(DOCKERIGNORE), read(COMPOSE));
    let members = workspace_members(&read("Cargo.toml"));
    let dockerfile_checks = |text: &str, ignore: &str| {
        let mut problems = build_problems(text);
        problems.extend(copy_problems(text, ignore, &repo(), &members));
        problems.extend(runtime_problems(text));
        problems
    };
    let breaks: &[(&str, &str, &str, &str)] = &[
        (DOCKERFILE, "--release --locked", "--release", "no build stage runs"),
        (DOCKERFILE, "FROM debian:bookworm-slim", "FROM rust:1.91-slim-bookworm", "toolchain"),
        (DOCKERFILE, "COPY --from=build ", "COPY --from=nowhere ", "nothing from the build"),
        (DOCKERFILE, "COPY ui ui", "COPY web ui", "web, which is not in the repository"),
        (DOCKERFILE, "COPY bench bench", "", "does not copy bench"),
        (DOCKERFILE, "USER 10001:10001", "USER root", "USER root: the image runs as root"),
        (DOCKERFILE, "\nUSER 10001:10001", "", "no USER"),
        (DOCKERFILE, ":}/readyz", ":}/healthz", "does not probe /readyz"),
        (DOCKERFILE, "--no-install-recommends curl", "--no-install-recommends tini", "install"),
        (DOCKERFILE, "CMD [\"server\"]", "CMD [\"migrate\"]", "not `aetr server`"),
        (DOCKERFILE, "AETR_BIND=0.0.0.0:9999", "AETR_BIND=127.0.0.1:9999", "ENV AETR_BIND is"),
        (DOCKERFILE, "EXPOSE 9999", "EXPOSE 8080", "has no EXPOSE"),
        (
            DOCKERFILE,
            "COPY --from=build /out/aetr /usr/local/bin/aetr",
            "COPY --from=build /out/aetr /opt/",
            "not the `aetr` that",
        ),
        (DOCKERIGNORE, "!ui\n", "", "leaves ui out"),
        (DOCKERIGNORE, "*\n", "", "lets target into"),
        (
            COMPOSE,
            "condition: service_healthy",
            "condition: service_started",
            "not service_healthy",
        ),
        (COMPOSE, "@postgres:5432", "@localhost:5432", "DATABASE_URL is"),
        (COMPOSE, "POSTGRES_PASSWORD: aetr", "POSTGRES_PASSWORD: secret", "DATABASE_URL is"),
        (COMPOSE, "\"pg_isready\", ", "", "does not run pg_isready"),
        (COMPOSE, "context: ..", "context: .", "build context is"),
        (COMPOSE, "dockerfile: docker/Dockerfile", "dockerfile: Dockerfile", "build dockerfile is"),
        (COMPOSE, "\"9999:9999\"", "\"8080:9999\"", "does not publish port 9999"),
        (COMPOSE, "- postgres-data:/var", "- ./pg:/var", "not a named volume"),
        (COMPOSE, "image: postgres:16", "image: postgres:latest", "pin postgres:15"),
        (COMPOSE, "AETR_PUBLIC_URL:", "AETR_PUBLIC_UR:", "sets no AETR_PUBLIC_URL"),
        (COMPOSE, "stop_grace_period: 40s", "stop_grace_period: 10s", "stop_grace_period is"),
        (COMPOSE, "  aetr:\n", "  aetr:\n    : [\n", "is not YAML"),
    ];
    for &(file, from, to, expected) in breaks {
        let original = match file {
            DOCKERFILE => &dockerfile,
            DOCKERIGNORE => &ignore,
            _ => &compose,
        };
        assert!(original.contains(from), "{file} no longer contains {from:?}: update this test");
        let broken = original.replacen(from, to, 1);
        let problems = match file {
            DOCKERFILE => dockerfile_checks(&broken, &ignore),
            DOCKERIGNORE => dockerfile_checks(&dockerfile, &broken),
            _ => compose_problems(&broken, &repo()),
        };
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{file} with {from:?} changed to {to:?}: expected a problem naming {expected:?}, \
             got {problems:?}"
        );
    }
}

// ---- The Dockerfile ----

/// One Dockerfile instruction: its keyword (upper case) and its arguments, continuation lines
/// joined. Comments and parser directives (`# syntax=`) are dropped.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let (keyword, args) =
            current.split_once(char::is_whitespace).unwrap_or((current.as_str(), ""));
        out.push(Instruction { keyword: keyword.to_uppercase(), args: words(args).join(" ") });
        current.clear();
    }
    out
}

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// The instructions from one FROM to the next, with the stage's image and name.
#[derive(Debug)]
struct Stage<'a> {
    image: String,
    name: Option<String>,
    body: &'a [Instruction],
}

impl<'a> Stage<'a> {
    fn all(&self, keyword: &'static str) -> impl Iterator<Item = &'a Instruction> {
        self.body.iter().filter(move |i| i.keyword == keyword)
    }

    fn last(&self, keyword: &'static str) -> Option<&'a Instruction> {
        self.all(keyword).last()
    }

    fn runs(&self, command: &str) -> bool {
        self.all("RUN").any(|i| i.args.contains(command))
    }
}

fn stages(instructions: &[Instruction]) -> Vec<Stage<'_>> {
    let starts: Vec<usize> = (0..instructions.len())
        .filter(|&n| instructions[n].keyword == "FROM")
        .chain([instructions.len()])
        .collect();
    starts
        .windows(2)
        .map(|w| {
            let from: Vec<&str> = words(&instructions[w[0]].args)
                .into_iter()
                .filter(|f| !f.starts_with("--"))
                .collect();
            let name = match from.as_slice() {
                [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => None,
            };
            Stage {
                image: from.first().copied().unwrap_or_default().to_owned(),
                name,
                body: &instructions[w[0] + 1..w[1]],
            }
        })
        .collect()
}

/// An instruction's `--flag=value`s, and its other words (the JSON form `["a", "b"]` too).
fn flags_and_words(args: &str) -> (Vec<String>, Vec<String>) {
    let (mut flags, mut rest) = (Vec::new(), args);
    while let Some(after) = rest.strip_prefix("--") {
        let (flag, tail) = after.split_once(' ').unwrap_or((after, ""));
        flags.push(flag.to_owned());
        rest = tail;
    }
    let words = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(json) => json,
        Err(_) => words(rest).into_iter().map(str::to_owned).collect(),
    };
    (flags, words)
}

fn flag<'f>(flags: &'f [String], name: &str) -> Option<&'f str> {
    flags.iter().find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
}

/// The build stage (the one that runs [`CARGO_BUILD`]) and the final, runtime stage.
fn build_problems(dockerfile: &str) -> Vec<String> {
    let all = instructions(dockerfile);
    let stages = stages(&all);
    let mut problems = Vec::new();
    let Some((runtime, builders)) = stages.split_last() else {
        return vec!["no FROM: this is no Dockerfile".into()];
    };
    if builders.is_empty() {
        problems
            .push(format!("one FROM: no build stage before the runtime stage ({})", runtime.image));
    }
    let Some(build) = builders.iter().find(|s| s.runs(CARGO_BUILD)) else {
        problems.push(format!("no build stage runs `{CARGO_BUILD}`"));
        return problems;
    };
    if !build.runs("target/release/aetr") {
        problems.push("the build stage does not take the binary target/release/aetr".into());
    }
    if runtime.image == build.image || runtime.image.starts_with("rust") {
        problems.push(format!(
            "the runtime stage is FROM {}: the image would carry the Rust toolchain",
            runtime.image
        ));
    }
    let copied_from_build = runtime.all("COPY").any(|c| {
        let (flags, _) = flags_and_words(&c.args);
        flag(&flags, "from").is_some_and(|from| build.name.as_deref() == Some(from))
    });
    if !copied_from_build {
        problems.push(format!(
            "the runtime stage copies nothing from the build stage (COPY --from={})",
            build.name.as_deref().unwrap_or("<unnamed: give the build stage a name with AS>")
        ));
    }
    problems
}

/// What `COPY` takes from the build context: each path exists in the repository and is let in by
/// the Dockerfile's ignore file, and together they are all that `cargo build` reads.
fn copy_problems(dockerfile: &str, ignore: &str, repo: &Path, members: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut copied = Vec::new();
    for copy in
        instructions(dockerfile).iter().filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
    {
        let (flags, words) = flags_and_words(&copy.args);
        if flag(&flags, "from").is_some() {
            continue;
        }
        let Some((_destination, sources)) = words.split_last() else {
            problems.push(format!("{} {}: no destination", copy.keyword, copy.args));
            continue;
        };
        for source in sources {
            let source = source.trim_start_matches("./").trim_end_matches('/');
            if !repo.join(source).exists() {
                problems.push(format!(
                    "{} copies {source}, which is not in the repository",
                    copy.keyword
                ));
            }
            if ignored(ignore, source) {
                problems.push(format!("{DOCKERIGNORE} leaves {source} out of the build context"));
            }
            copied.push(source.to_owned());
        }
    }
    let needed = ["Cargo.toml", "Cargo.lock", "migrations", "ui"]
        .into_iter()
        .map(str::to_owned)
        .chain(members.iter().cloned());
    for path in needed {
        if !copied.contains(&path) {
            problems.push(format!(
                "the build does not copy {path} (the workspace's manifest and lock file, its \
                 members, and what the server embeds: migrations/ and ui/)"
            ));
        }
    }
    for path in ["target", ".git", ".aetr"] {
        if !ignored(ignore, path) {
            problems.push(format!("{DOCKERIGNORE} lets {path} into the build context"));
        }
    }
    problems
}

/// Whether a `.dockerignore` leaves a path out of the context. It knows the patterns that
/// `Dockerfile.dockerignore` uses: `*` (every top-level path) and plain paths; the last pattern
/// that matches wins, and `!` lets a path back in.
fn ignored(ignore: &str, path: &str) -> bool {
    let mut out = false;
    for line in ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (keep, pattern) = match line.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, line),
        };
        let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
        if pattern == "*" || path == pattern || path.starts_with(&format!("{pattern}/")) {
            out = !keep;
        }
    }
    out
}

/// The runtime stage: a user that is not root, `aetr server` as the default command, bound to
/// every address, and a HEALTHCHECK on /readyz with a tool that the image has.
fn runtime_problems(dockerfile: &str) -> Vec<String> {
    let all = instructions(dockerfile);
    let stages = stages(&all);
    let Some(runtime) = stages.last() else {
        return vec!["no FROM: this is no Dockerfile".into()];
    };
    let mut problems = Vec::new();

    match runtime.last("USER") {
        None => problems.push("no USER in the runtime stage: the image would run as root".into()),
        Some(user) => {
            let name = user.args.split(':').next().unwrap_or_default();
            if name == "root" || name == "0" || name.is_empty() {
                problems.push(format!("USER {}: the image runs as root", user.args));
            }
        }
    }

    match runtime.last("HEALTHCHECK") {
        None => problems.push("no HEALTHCHECK in the runtime stage".into()),
        Some(check) => {
            if !check.args.contains("/readyz") {
                problems.push(format!("the HEALTHCHECK does not probe /readyz: {}", check.args));
            }
            if check.args.contains("curl") && !runtime.all("RUN").any(|r| installs(&r.args, "curl"))
            {
                problems.push(
                    "the HEALTHCHECK runs curl, which the runtime stage does not install".into(),
                );
            }
        }
    }

    let command: Vec<String> = [runtime.last("ENTRYPOINT"), runtime.last("CMD")]
        .into_iter()
        .flatten()
        .flat_map(|i| flags_and_words(&i.args).1)
        .collect();
    let binary = command.first().map(String::as_str).unwrap_or_default();
    let args: Vec<&str> = command.iter().skip(1).map(String::as_str).collect();
    if Path::new(binary).file_name().is_none_or(|b| b != "aetr") || args != ["server"] {
        problems.push(format!("ENTRYPOINT and CMD run {command:?}, not `aetr server`"));
    }
    let installed = runtime.all("COPY").find_map(|c| {
        let (flags, words) = flags_and_words(&c.args);
        flag(&flags, "from").and(words.last().cloned())
    });
    let on_path = |at: &str| {
        at == binary
            || (!binary.contains('/')
                && ["/usr/local/bin/", "/usr/bin/"]
                    .iter()
                    .any(|dir| at == format!("{dir}{binary}") || at == *dir))
    };
    if !installed.as_deref().is_some_and(on_path) {
        problems.push(format!(
            "the binary copied from the build stage ({installed:?}) is not the `{binary}` that \
             ENTRYPOINT runs"
        ));
    }

    let bind = env(runtime, "AETR_BIND");
    match bind.as_deref().map(str::parse::<SocketAddr>) {
        Some(Ok(addr)) if addr.ip().is_unspecified() => {
            let exposed = runtime
                .all("EXPOSE")
                .flat_map(|e| words(&e.args))
                .any(|p| p.trim_end_matches("/tcp") == addr.port().to_string());
            if !exposed {
                problems.push(format!("AETR_BIND's port {} has no EXPOSE", addr.port()));
            }
        }
        _ => problems.push(format!(
            "ENV AETR_BIND is {bind:?}: in a container aetr must bind 0.0.0.0, or no one outside \
             can reach it"
        )),
    }
    problems
}

/// Whether a RUN installs a package (with apt-get, apt or apk).
fn installs(run: &str, package: &str) -> bool {
    run.split("&&").any(|command| {
        let w = words(command);
        let installer =
            w.windows(2).any(|p| matches!(p, ["apt-get" | "apt", "install"] | ["apk", "add"]));
        installer && w.contains(&package)
    })
}

/// The last value that the stage's ENV instructions give a variable.
fn env(stage: &Stage, name: &str) -> Option<String> {
    stage
        .all("ENV")
        .flat_map(|e| match e.args.split_once(' ') {
            // The old form, `ENV NAME value`, sets one variable.
            Some((key, value)) if !key.contains('=') => vec![(key.to_owned(), value.to_owned())],
            _ => words(&e.args)
                .into_iter()
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect(),
        })
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value)
        .last()
}

/// The `members` of the workspace's Cargo.toml.
fn workspace_members(manifest: &str) -> Vec<String> {
    let Some(list) = manifest.lines().find_map(|l| l.trim().strip_prefix("members")) else {
        return Vec::new();
    };
    list.trim_start_matches([' ', '=', '['])
        .split(']')
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

// ---- The compose file ----

/// The services, PostgreSQL's data, and how aetr finds and waits for PostgreSQL.
fn compose_problems(text: &str, repo: &Path) -> Vec<String> {
    let docs = match YamlLoader::load_from_str(text) {
        Ok(docs) => docs,
        Err(e) => return vec![format!("{COMPOSE} is not YAML: {e}")],
    };
    let [doc] = docs.as_slice() else {
        return vec![format!("{COMPOSE} holds {} YAML documents, not one", docs.len())];
    };
    let Some(services) = doc["services"].as_hash() else {
        return vec!["no `services` mapping".into()];
    };
    let named = |image: &str| {
        services
            .iter()
            .filter(|(_, s)| s["image"].as_str().is_some_and(|i| i.starts_with(image)))
            .filter_map(|(name, s)| Some((name.as_str()?, s)))
            .collect::<Vec<_>>()
    };
    let mut problems = Vec::new();

    let [(pg_name, pg)] = named("postgres:")[..] else {
        return vec!["not one service runs the postgres image".into()];
    };
    let major = pg["image"].as_str().and_then(|i| i["postgres:".len()..].split(['.', '-']).next());
    if !major.and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| (15..=17).contains(&m)) {
        problems.push(format!(
            "the {pg_name} service's image is {}: pin postgres:15, 16 or 17 (whose data is in \
             /var/lib/postgresql/data)",
            pg["image"].as_str().unwrap_or("missing")
        ));
    }
    let check = strings(&pg["healthcheck"]["test"]).join(" ");
    if !check.contains("pg_isready") {
        problems.push(format!(
            "the {pg_name} service's healthcheck does not run pg_isready: {check:?}"
        ));
    }
    let declared = doc["volumes"].as_hash();
    let data = strings(&pg["volumes"]).into_iter().find_map(|v| {
        let (source, target) = v.split_once(':')?;
        (target.trim_end_matches(":rw") == "/var/lib/postgresql/data").then(|| source.to_owned())
    });
    let is_named = data.as_deref().is_some_and(|source| {
        declared.is_some_and(|d| d.contains_key(&Yaml::String(source.to_owned())))
    });
    if !is_named {
        problems.push(format!(
            "PostgreSQL's data (/var/lib/postgresql/data) is in {data:?}, not a named volume \
             declared under `volumes`"
        ));
    }
    let pg_env = environment(&pg["environment"]);
    let pg_var = |name: &str| pg_env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    let built: Vec<_> = services.iter().filter(|(_, s)| !s["build"].is_badvalue()).collect();
    let [(aetr_name, aetr)] = built[..] else {
        problems.push(format!("{} services are built, not one (aetr)", built.len()));
        return problems;
    };
    let aetr_name = aetr_name.as_str().unwrap_or_default();

    let compose_dir = repo.join("docker");
    let context = aetr["build"]["context"].as_str().map(|c| compose_dir.join(c));
    let at_root = context.as_ref().and_then(|c| c.canonicalize().ok()) == repo.canonicalize().ok();
    if !at_root {
        problems.push(format!(
            "the {aetr_name} service's build context is {context:?}, not the repository's root"
        ));
    }
    let dockerfile = aetr["build"]["dockerfile"].as_str();
    let found = context.zip(dockerfile).and_then(|(c, d)| c.join(d).canonicalize().ok());
    if found.is_none() || found != repo.join(DOCKERFILE).canonicalize().ok() {
        problems.push(format!(
            "the {aetr_name} service's build dockerfile is {dockerfile:?}, not {DOCKERFILE} in \
             its context"
        ));
    }

    let condition = aetr["depends_on"][pg_name]["condition"].as_str();
    if condition != Some("service_healthy") {
        problems.push(format!(
            "{aetr_name} depends on {pg_name} with condition {condition:?}, not service_healthy"
        ));
    }

    let env = environment(&aetr["environment"]);
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let database_url = var("DATABASE_URL");
    let url = database_url.as_deref().and_then(|u| url::Url::parse(u).ok());
    let user = pg_var("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
    let expected = url.as_ref().is_some_and(|u| {
        u.host_str() == Some(pg_name)
            && u.port().is_none_or(|p| p == 5432)
            && u.username() == user
            && u.password().map(str::to_owned) == pg_var("POSTGRES_PASSWORD")
            && u.path() == format!("/{}", pg_var("POSTGRES_DB").unwrap_or_else(|| user.clone()))
    });
    if !expected {
        problems.push(format!(
            "{aetr_name}'s DATABASE_URL is {database_url:?}: not the {pg_name} service's database \
             at {pg_name}:5432 with its POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB"
        ));
    }
    if var("AETR_PUBLIC_URL").is_none_or(|u| u.is_empty()) {
        problems.push(format!(
            "{aetr_name} sets no AETR_PUBLIC_URL: bound to 0.0.0.0, aetr refuses to start \
             without it"
        ));
    }

    let ports = strings(&aetr["ports"]);
    if !ports.iter().any(|p| p.trim_end_matches("/tcp").ends_with("9999:9999")) {
        problems.push(format!("{aetr_name} does not publish port 9999 as 9999: {ports:?}"));
    }

    let grace = aetr["stop_grace_period"].as_str();
    if grace.and_then(seconds).is_none_or(|s| s <= SHUTDOWN_SECONDS) {
        problems.push(format!(
            "{aetr_name}'s stop_grace_period is {grace:?}: not longer than aetr's \
             {SHUTDOWN_SECONDS} s of graceful shutdown, so in-flight work is killed"
        ));
    }
    problems
}

/// A scalar's or a sequence's strings (a compose healthcheck's `test`, `ports`, `volumes`).
fn strings(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::Array(items) => items.iter().flat_map(strings).collect(),
        Yaml::String(s) => vec![s.clone()],
        Yaml::Integer(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// A service's `environment`, as a mapping or as a list of `NAME=value`.
fn environment(value: &Yaml) -> Vec<(String, String)> {
    match value {
        Yaml::Hash(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), strings(v).concat())))
            .collect(),
        Yaml::Array(_) => strings(value)
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

/// A compose duration in seconds: `40s`, `2m` or `1m30s`.
fn seconds(duration: &str) -> Option<u64> {
    let (minutes, rest) = match duration.split_once('m') {
        Some((m, rest)) => (m.parse::<u64>().ok()?, rest),
        None => (0, duration),
    };
    let secs = match rest.strip_suffix('s') {
        Some(s) => s.parse::<u64>().ok()?,
        None if rest.is_empty() => 0,
        None => return None,
    };
    Some(minutes * 60 + secs)
}
