//! `aetr check`: validates a step tree file with the engine, as saving it would.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use aetr_engine::graph;
use aetr_engine::parse::{AnyPool, Parser};
use aetr_engine::script::BoaRunner;
use aetr_engine::{FieldError, FieldErrors, Limits, Step};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::guard::Rules;

pub fn run(file: &Path) -> ExitCode {
    let text = match read(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("aetr check: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    match check(&text) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{}", json!({ "errors": errors.messages() }));
            ExitCode::FAILURE
        }
    }
}

fn read(file: &Path) -> std::io::Result<String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(file)
    }
}

/// The tree's root id and size, or every error found.
fn check(text: &str) -> Result<Value, FieldErrors> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FieldError::invalid("", format!("not valid JSON: {e}")))?;
    let limits = Limits::default();
    let mut scripts = BoaRunner::default();
    let mut new_id = Uuid::new_v4;
    // The default rules: a server may deny more, but never less.
    let urls = Rules::new("", "", &[]).map_err(|e| FieldError::invalid("", e))?;
    let tree = Parser {
        limits: &limits,
        scripts: &mut scripts,
        new_id: &mut new_id,
        urls: &urls,
        pools: &AnyPool,
    }
    .fat_tree(&value)?;
    let steps: HashMap<Uuid, Step> = tree.steps.into_iter().map(|s| (s.id, s)).collect();
    if let Some(errors) = FieldErrors::from_vec(graph::unknown_references(&tree.references, &steps))
    {
        return Err(errors);
    }
    let shape = graph::check_tree(tree.root, &steps, &limits)?;
    Ok(json!({ "id": tree.root, "nodes": shape.nodes, "depth": shape.depth }))
}
