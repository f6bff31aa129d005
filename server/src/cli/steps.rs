//! `aetr steps put|get|ls|rm|clone`.

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::Client;
use super::run::step_id;
use super::{print, read_stdin, text, Exit, ServerUrl};

#[derive(Debug, Clone, Subcommand)]
pub enum StepsCommand {
    /// Saves a whole nested tree (the body of `PUT /api/v1/steps`) from a file, or `-` for
    /// standard input; prints its root's id.
    Put {
        #[command(flatten)]
        server: ServerUrl,
        /// The tree's JSON file, or `-`.
        file: String,
    },
    /// Prints a step tree, by id or unique name.
    Get {
        #[command(flatten)]
        server: ServerUrl,
        step: String,
    },
    /// Lists steps, every one or those whose name contains QUERY.
    Ls {
        #[command(flatten)]
        server: ServerUrl,
        query: Option<String>,
    },
    /// Removes a step (refused while another step uses it).
    Rm {
        #[command(flatten)]
        server: ServerUrl,
        step: String,
    },
    /// Copies a whole tree, with new ids, under a new name; prints the copy's id.
    Clone {
        #[command(flatten)]
        server: ServerUrl,
        /// The tree to copy: its root's id, or its unique name.
        step: String,
        /// The copy's name; by default the tree's name with " (copy)" after it.
        #[arg(long)]
        name: Option<String>,
    },
}

pub async fn run(command: StepsCommand) -> Exit {
    match steps(command).await {
        Ok(()) => Exit::Done,
        Err(exit) => exit,
    }
}

async fn steps(command: StepsCommand) -> Result<(), Exit> {
    match command {
        StepsCommand::Put { server, file } => {
            let client = Client::new(&server)?;
            let text = match file.as_str() {
                "-" => read_stdin("the tree")?,
                path => std::fs::read_to_string(path)
                    .map_err(|e| Exit::Usage(format!("cannot read {path}: {e}")))?,
            };
            let tree: Value = serde_json::from_str(&text)
                .map_err(|e| Exit::Usage(format!("{file} is not JSON: {e}")))?;
            let saved = client.put("/steps", &tree).await?;
            print(&saved, || saved["id"].as_str().unwrap_or_default().to_owned());
        }
        StepsCommand::Get { server, step } => {
            let client = Client::new(&server)?;
            let id = step_id(&client, &step).await?;
            let tree = client.get(&format!("/steps/{id}")).await?;
            print(&tree, || {
                let mut lines = String::new();
                outline(&tree, 0, &mut lines);
                lines.trim_end().to_owned()
            });
        }
        StepsCommand::Ls { server, query } => {
            let client = Client::new(&server)?;
            let path = match &query {
                Some(q) => format!(
                    "/steps?q={}",
                    url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
                ),
                None => "/steps".to_owned(),
            };
            let steps = client.get(&path).await?;
            print(&steps, || {
                let rows = steps.as_array().into_iter().flatten();
                let line = |s: &Value| {
                    format!(
                        "{}  {:<10}  {}",
                        text(&s["id"]),
                        text(&s["stepType"]),
                        text(&s["name"])
                    )
                };
                rows.map(line).collect::<Vec<_>>().join("\n")
            });
        }
        StepsCommand::Rm { server, step } => {
            let client = Client::new(&server)?;
            let id = step_id(&client, &step).await?;
            client.delete(&format!("/steps/{id}")).await?;
            print(&json!({ "deleted": id }), || format!("deleted step {id}"));
        }
        StepsCommand::Clone { server, step, name } => {
            let client = Client::new(&server)?;
            let id = step_id(&client, &step).await?;
            let body = name.map_or(Value::Null, |name| json!({ "name": name }));
            let copy = client.post(&format!("/steps/{id}/clone"), &body).await?;
            print(&copy, || copy["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    Ok(())
}

/// A step tree as indented lines: each step's name and type.
fn outline(step: &Value, depth: usize, out: &mut String) {
    let action = step["action"]["url"].as_str().map(|url| format!(" {url}")).unwrap_or_default();
    out.push_str(&format!(
        "{:indent$}{} ({}{action})\n",
        "",
        text(&step["name"]),
        text(&step["stepType"]),
        indent = depth * 2
    ));
    for child in step["children"].as_array().into_iter().flatten() {
        outline(child, depth + 1, out);
    }
}
