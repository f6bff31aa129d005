//! Saving step definitions: parse and compile-check the body with the engine, check the graph
//! it makes with the stored steps (unknown children, cycles, sizes with reuse expanded), and
//! write it, all in one transaction that holds the step graph's lock.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix_web::web;
use aetr_engine::graph::{self, Overlay};
use aetr_engine::parse::{Parser, Reference};
use aetr_engine::script::BoaRunner;
use aetr_engine::{ChildLink, FieldError, FieldErrors, Limits, Step, StepBody};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use serde_json::Value;
use uuid::Uuid;

use crate::guard::Rules;
use crate::http::ApiError;
use crate::store::{pools, schedules, steps};

thread_local! {
    /// Compiles scripts for the parser, one runner per blocking thread, so that the same
    /// script is checked once per thread.
    static CHECKER: RefCell<BoaRunner> = RefCell::new(BoaRunner::default());
}

/// Steps to write: the ones a body defines, and the stored steps it refers to.
#[derive(Debug)]
pub struct Change {
    /// The step the request is about: the root of a fat tree, or the one step.
    pub root: Uuid,
    pub steps: Vec<Step>,
    pub references: Vec<Reference>,
}

/// Parses a body with the engine on a blocking thread: parsing a large tree and compiling its
/// scripts is CPU work. New ids are UUIDv7, so steps list in the order they were made.
pub async fn parse<T: Send + 'static>(
    db: &Pool,
    limits: &Limits,
    urls: &Arc<Rules>,
    value: Value,
    parse: impl FnOnce(&mut Parser<'_>, &Value) -> Result<T, FieldErrors> + Send + 'static,
) -> Result<T, ApiError> {
    let (limits, urls) = (limits.clone(), urls.clone());
    // Actions may name only pools that exist. The names are few; a pool deleted meanwhile is
    // refused by its DELETE while a step names it.
    let pools: HashSet<String> = match has_pool_field(&value) {
        true => pools::names(&db.get().await?).await?.into_iter().collect(),
        false => HashSet::new(),
    };
    let parsed = web::block(move || {
        CHECKER.with(|checker| {
            let mut checker = checker.borrow_mut();
            let mut new_id = Uuid::now_v7;
            let mut parser = Parser {
                limits: &limits,
                scripts: &mut *checker,
                new_id: &mut new_id,
                urls: &*urls,
                pools: &pools,
            };
            parse(&mut parser, &value)
        })
    })
    .await?;
    Ok(parsed?)
}

/// Whether a definition names a pool anywhere (most do not: their save reads no pool).
fn has_pool_field(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k == "pool" || has_pool_field(v)),
        Value::Array(items) => items.iter().any(has_pool_field),
        _ => false,
    }
}

/// Whether a save may replace a stored step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Insert or replace.
    Upsert,
    /// The root must be new (409 otherwise).
    Create,
}

/// Checks a change against the stored steps and writes it.
pub async fn save(
    pool: &Pool,
    limits: &Limits,
    change: Change,
    mode: Mode,
) -> Result<(), ApiError> {
    let mut client = pool.get().await?;
    let tx = locked(&mut client).await?;
    if mode == Mode::Create && steps::exists(&tx, change.root).await? {
        return Err(ApiError::Conflict(format!(
            "a step with id {} already exists; PUT /api/v1/steps/slim replaces it",
            change.root
        )));
    }
    write(&tx, limits, &change).await?;
    tx.commit().await?;
    Ok(())
}

/// A transaction that holds the step graph's lock.
async fn locked(client: &mut deadpool_postgres::Client) -> Result<Transaction<'_>, ApiError> {
    let tx = client.transaction().await?;
    steps::lock_graph(&tx).await?;
    Ok(tx)
}

async fn write(tx: &Transaction<'_>, limits: &Limits, change: &Change) -> Result<(), ApiError> {
    check(tx, limits, change).await?;
    steps::upsert(tx, &change.steps).await?;
    Ok(())
}

/// The graph that the change makes with the stored steps: every child exists, there is no
/// cycle, and every tree the change is part of, its own and those of the steps that use its
/// steps, keeps within the limits with reuse expanded.
async fn check(
    client: &impl GenericClient,
    limits: &Limits,
    change: &Change,
) -> Result<(), ApiError> {
    let defined: HashMap<Uuid, Step> = change.steps.iter().map(|s| (s.id, s.clone())).collect();
    let ids: Vec<Uuid> = change.steps.iter().map(|s| s.id).collect();
    let roots = steps::roots_above(client, &ids).await?;
    let mut starts = roots.clone();
    starts.extend(change.references.iter().map(|r| r.id));
    let stored = steps::closure(client, &starts).await?;
    let graph = Overlay { top: &defined, base: &stored };

    if let Some(errors) =
        FieldErrors::from_vec(graph::unknown_references(&change.references, &graph))
    {
        return Err(errors.into());
    }
    graph::check_tree(change.root, &graph, limits)?;
    for root in roots.into_iter().filter(|r| *r != change.root) {
        graph::check_tree(root, &graph, limits).map_err(|e| {
            let name = stored.get(&root).map_or_else(String::new, |s| format!("{:?} ", s.name));
            FieldError::refused(
                "",
                format!("in the tree of step {name}({root}), which uses this one: {}", e.message),
            )
        })?;
    }
    Ok(())
}

/// Replaces a stored step's children.
pub async fn set_children(
    pool: &Pool,
    limits: &Limits,
    id: Uuid,
    children: Vec<ChildLink>,
    references: Vec<Reference>,
) -> Result<(), ApiError> {
    let mut client = pool.get().await?;
    let tx = locked(&mut client).await?;
    let mut step = steps::get(&tx, id).await?.ok_or_else(|| not_found(id))?;
    if matches!(step.body, StepBody::Action { .. }) && !children.is_empty() {
        return Err(FieldError::refused(
            "children",
            format!("step {id} is an Action, and an Action step has no children"),
        )
        .into());
    }
    step.children = children;
    write(&tx, limits, &Change { root: id, steps: vec![step], references }).await?;
    tx.commit().await?;
    Ok(())
}

/// Copies the tree under `id` as a new tree named `name` (by default the tree's name with
/// " (copy)" after it): every step of it gets a new id (a step that the tree uses twice is
/// copied once, and used twice by the copy) and the same contents. Returns the new root's id.
pub async fn clone_tree(
    pool: &Pool,
    limits: &Limits,
    id: Uuid,
    name: Option<String>,
) -> Result<Uuid, ApiError> {
    let mut client = pool.get().await?;
    let tx = locked(&mut client).await?;
    let stored = steps::closure(&tx, &[id]).await?;
    let original = stored.get(&id).ok_or_else(|| not_found(id))?;
    let name = name.unwrap_or_else(|| format!("{} (copy)", original.name));
    aetr_engine::parse::check_name(limits, &name, "name")?;
    // New ids in pre-order, so that the copy's steps list in the order of its tree.
    let mut new_ids: HashMap<Uuid, Uuid> = HashMap::with_capacity(stored.len());
    let mut stack = vec![id];
    while let Some(old) = stack.pop() {
        if new_ids.contains_key(&old) {
            continue;
        }
        new_ids.insert(old, Uuid::now_v7());
        let children = stored.get(&old).map(|step| step.children.as_slice()).unwrap_or_default();
        stack.extend(children.iter().rev().map(|link| link.id));
    }
    let new_id = |old: Uuid| new_ids.get(&old).copied().unwrap_or(old);
    let root = new_id(id);
    let copies = stored.into_values().map(|mut step| {
        step.id = new_id(step.id);
        for link in &mut step.children {
            link.id = new_id(link.id);
        }
        if step.id == root {
            step.name.clone_from(&name);
        }
        step
    });
    write(&tx, limits, &Change { root, steps: copies.collect(), references: Vec::new() }).await?;
    tx.commit().await?;
    Ok(root)
}

/// Deletes a step that no other step uses.
pub async fn delete(pool: &Pool, id: Uuid) -> Result<(), ApiError> {
    /// How many of the steps that use it the 409 names.
    const NAMED: usize = 5;
    let mut client = pool.get().await?;
    let tx = locked(&mut client).await?;
    let parents = steps::parents(&tx, id).await?;
    if !parents.is_empty() {
        let mut names: Vec<String> =
            parents.iter().take(NAMED).map(|p| format!("{:?} ({})", p.name, p.id)).collect();
        if parents.len() > NAMED {
            names.push(format!("and {} more", parents.len() - NAMED));
        }
        return Err(ApiError::Conflict(format!(
            "step {id} is a child of {} step(s): {}; remove it from their children first",
            parents.len(),
            names.join(", ")
        )));
    }
    let scheduled = schedules::of_step(&tx, id, NAMED as i64 + 1).await?;
    if !scheduled.is_empty() {
        let mut ids: Vec<String> = scheduled.iter().take(NAMED).map(Uuid::to_string).collect();
        if scheduled.len() > NAMED {
            ids.push("and more".to_owned());
        }
        return Err(ApiError::Conflict(format!(
            "step {id} is run by schedule(s) {}; delete them first",
            ids.join(", ")
        )));
    }
    if !steps::delete(&tx, id).await? {
        return Err(not_found(id));
    }
    tx.commit().await?;
    Ok(())
}

pub fn not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::NotFound(format!("no step with id {id}"))
}
