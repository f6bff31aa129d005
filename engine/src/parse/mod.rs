//! Parsing and validation of API input into the step model.
//!
//! Every error names the path to its field (`children[2].mapper: ...`) and says whether it is
//! a 400 (syntax, shape, type or enum) or a 422 (a script that does not compile, a limit).
//! Scripts are compiled here, when a tree is saved, not when it runs.
//!
//! What needs the stored steps (unknown children, cycles, expanded sizes) is checked by
//! [`crate::graph`] once the server has loaded them. The parsed bodies list the ids they refer
//! to, with the path of each reference, so that those errors can name the field too.

mod action;
mod reader;

pub use action::{is_pool_name, POOL_NAME_RULE};

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{FieldError, FieldErrors};
use crate::limits::Limits;
use crate::schema::InputSchema;
use crate::script::ScriptRunner;
use crate::step::{Action, ChildLink, Chooser, MapSpec, Mapper, Reducer, Step, StepBody, StepType};
use reader::{index, join, parse_uuid, type_name, Errors, Obj};

/// The fields of a step definition.
const STEP_FIELDS: &[&str] =
    &["id", "name", "stepType", "action", "reducer", "map", "branch", "inputSchema", "children"];
/// The fields of a step definition that is a child in a fat tree.
const CHILD_STEP_FIELDS: &[&str] = &[
    "id",
    "name",
    "stepType",
    "action",
    "reducer",
    "map",
    "branch",
    "inputSchema",
    "children",
    "mapper",
];
/// The fields of a reference to a stored step.
const REFERENCE_FIELDS: &[&str] = &["id", "mapper"];

/// A step id that a body refers to without defining it: it must already be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub id: Uuid,
    /// Where the reference is, such as `children[1].children[0].id`.
    pub path: String,
}

/// A whole nested tree, for `PUT /steps`: every step it defines, and the stored steps it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatTree {
    pub root: Uuid,
    /// Each defined step once, the root first. Ids that were absent have been generated.
    pub steps: Vec<Step>,
    pub references: Vec<Reference>,
}

/// One step whose children are given by id, for `POST /steps` and `PUT /steps/slim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlimStep {
    pub step: Step,
    /// Its children, which must already be stored.
    pub references: Vec<Reference>,
}

/// Everything that parsing needs besides the body.
pub struct Parser<'a> {
    pub limits: &'a Limits,
    /// Compiles every mapper and reducer (without running it).
    pub scripts: &'a mut dyn ScriptRunner,
    /// Makes the id of a step given without one.
    pub new_id: &'a mut dyn FnMut() -> Uuid,
    /// Which action URLs may be saved (the server's SSRF rules, as far as a URL as written can
    /// tell). A refusal is a 422 at the URL's path.
    pub urls: &'a dyn UrlPolicy,
    /// The pools that exist: an action may name only one of them (a 422 at `action.pool`).
    pub pools: &'a dyn PoolNames,
}

/// The pools that actions may name.
pub trait PoolNames {
    fn exists(&self, name: &str) -> bool;
}

/// Every pool exists (for checks that have no database).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyPool;

impl PoolNames for AnyPool {
    fn exists(&self, _: &str) -> bool {
        true
    }
}

impl PoolNames for HashSet<String> {
    fn exists(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// Decides whether an action's URL, as written, may be saved.
pub trait UrlPolicy {
    /// `Err(why)`: the URL is refused.
    fn check(&self, url: &url::Url) -> Result<(), String>;
}

/// Every well-formed http(s) URL may be saved.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyUrl;

impl UrlPolicy for AnyUrl {
    fn check(&self, _: &url::Url) -> Result<(), String> {
        Ok(())
    }
}

impl std::fmt::Debug for Parser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser").field("limits", self.limits).finish_non_exhaustive()
    }
}

impl Parser<'_> {
    /// Parses a fat tree: nested step definitions, where a child given only as
    /// `{id, mapper?}` refers to a stored step and leaves it unchanged.
    pub fn fat_tree(&mut self, value: &Value) -> Result<FatTree, FieldErrors> {
        let mut walk = FatWalk {
            defined: HashMap::new(),
            order: Vec::new(),
            seen: HashSet::new(),
            references: Vec::new(),
        };
        let mut errs = Errors::default();
        let root = self.fat_node(value, "", 0, &mut walk, &mut errs);
        finish(errs)?;
        let root = root.ok_or_else(|| FieldError::invalid("", "no tree"))?;
        let mut defined = walk.defined;
        let steps = walk.order.iter().filter_map(|id| defined.remove(id).map(|(s, _)| s)).collect();
        Ok(FatTree { root, steps, references: walk.references })
    }

    /// Parses one step whose children are given by id: `[uuid]` or `[{id, mapper?}]`.
    pub fn slim_step(&mut self, value: &Value) -> Result<SlimStep, FieldErrors> {
        let mut errs = Errors::default();
        let step = Obj::new(value, "", &mut errs).and_then(|obj| {
            obj.deny_unknown(STEP_FIELDS, &mut errs);
            let id = self.id_of(obj, &mut errs);
            let head = self.head(obj, &mut errs);
            let input_schema = input_schema(obj, &mut errs);
            let children = match obj.get("children") {
                Some(v) => self.links(v, &obj.path_of("children"), &mut errs),
                None => Some(Vec::new()),
            };
            let (name, body) = head?;
            check_children(
                &body,
                children.as_deref().unwrap_or_default(),
                obj,
                self.limits,
                &mut errs,
            );
            Some(Step { id: id?, name, body, input_schema, children: children? })
        });
        finish(errs)?;
        let step = step.ok_or_else(|| FieldError::invalid("", "no step"))?;
        let references = references_of(&step.children, "children");
        Ok(SlimStep { step, references })
    }

    /// Parses an ordered child list: `{"children":[{id, mapper?}]}`, or the bare array.
    pub fn child_list(
        &mut self,
        value: &Value,
    ) -> Result<(Vec<ChildLink>, Vec<Reference>), FieldErrors> {
        let mut errs = Errors::default();
        let (list, path) = match value {
            Value::Object(map) => {
                let obj = Obj { map, path: "" };
                obj.deny_unknown(&["children"], &mut errs);
                (obj.get("children").unwrap_or(&Value::Null), "children")
            }
            other => (other, ""),
        };
        let links = self.links(list, path, &mut errs);
        if let Some(links) = &links {
            if links.len() > self.limits.max_children {
                errs.refused(path, too_many_children(links.len(), self.limits));
            }
        }
        finish(errs)?;
        let links = links.unwrap_or_default();
        let references = references_of(&links, if path.is_empty() { "" } else { "children" });
        Ok((links, references))
    }

    fn fat_node(
        &mut self,
        value: &Value,
        path: &str,
        depth: u32,
        walk: &mut FatWalk,
        errs: &mut Errors,
    ) -> Option<Uuid> {
        let obj = Obj::new(value, path, errs)?;
        let is_child = depth > 0;
        if is_child && obj.has_keys_within(REFERENCE_FIELDS) {
            if obj.get("id").is_none() {
                errs.invalid(
                    &obj.path_of("name"),
                    "required, unless the child refers to a stored step by id",
                );
                return None;
            }
            let id = obj.uuid("id", errs)?;
            walk.references.push(Reference { id, path: obj.path_of("id") });
            return Some(id);
        }
        if depth > self.limits.max_depth {
            errs.refused(
                path,
                format!(
                    "the tree is deeper than the limit of {} levels (AETR_MAX_DEPTH)",
                    self.limits.max_depth
                ),
            );
            return None;
        }
        obj.deny_unknown(if is_child { CHILD_STEP_FIELDS } else { STEP_FIELDS }, errs);
        let id = self.id_of(obj, errs);
        if let Some(id) = id {
            if walk.seen.insert(id) {
                walk.order.push(id);
            }
        }
        let head = self.head(obj, errs);
        let input_schema = input_schema(obj, errs);
        let children = match obj.get("children") {
            Some(Value::Array(items)) => {
                let mut links = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let at = index(&obj.path_of("children"), i);
                    let mapper =
                        item.as_object().and_then(|m| m.get("mapper")).filter(|v| !v.is_null());
                    let mapper = mapper.and_then(|m| self.mapper(m, &join(&at, "mapper"), errs));
                    if let Some(child) = self.fat_node(item, &at, depth + 1, walk, errs) {
                        links.push(ChildLink { id: child, mapper });
                    }
                }
                Some(links)
            }
            Some(other) => {
                errs.invalid(
                    &obj.path_of("children"),
                    format!("expected an array, found {}", type_name(other)),
                );
                None
            }
            None => Some(Vec::new()),
        };
        let (name, body) = head?;
        let (id, children) = (id?, children?);
        check_children(&body, &children, obj, self.limits, errs);
        let step = Step { id, name, body, input_schema, children };
        match walk.defined.get(&id) {
            Some((first, _)) if *first == step => {}
            Some((_, first_path)) => errs.invalid(
                &obj.path_of("id"),
                format!(
                    "step {id} is defined twice with different contents (first at {})",
                    display_path(first_path)
                ),
            ),
            None => {
                walk.defined.insert(id, (step, path.to_owned()));
            }
        }
        Some(id)
    }

    fn id_of(&mut self, obj: Obj<'_>, errs: &mut Errors) -> Option<Uuid> {
        match obj.get("id") {
            Some(_) => obj.uuid("id", errs),
            None => Some((self.new_id)()),
        }
    }

    /// A step's name and body: everything but its id and children.
    fn head(&mut self, obj: Obj<'_>, errs: &mut Errors) -> Option<(String, StepBody)> {
        let name =
            obj.required_str("name", errs).and_then(|n| self.name(n, &obj.path_of("name"), errs));
        let step_type = if obj.get("stepType").is_none() {
            errs.invalid(&obj.path_of("stepType"), "required");
            None
        } else {
            let choices = StepType::ALL.map(|t| (t.as_str(), t));
            obj.choice("stepType", &choices, errs)
        };
        let step_type = step_type?;
        let only_for = |field: &str, kind: &str, errs: &mut Errors| {
            if obj.get(field).is_some() {
                errs.invalid(
                    &obj.path_of(field),
                    format!("only {kind} step has one; this is a {step_type} step"),
                );
            }
        };
        if step_type != StepType::Branch {
            only_for("branch", "a Branch", errs);
        }
        if step_type != StepType::Map {
            only_for("map", "a Map", errs);
        }
        let reducer =
            |parser: &mut Self, default: Reducer, errs: &mut Errors| match obj.get("reducer") {
                Some(r) => parser.reducer(r, &obj.path_of("reducer"), errs),
                None => Some(default),
            };
        let body = match step_type {
            StepType::Sequential => {
                only_for("action", "an Action", errs);
                // AETR's editor sends a no-op reducer when it switches a Parallel step to
                // Sequential: it is accepted, and dropped. Any other reducer is refused.
                let no_op = obj.get("reducer").is_some_and(|r| *r == json!({"type": "no-op"}));
                if !no_op {
                    only_for("reducer", PARENTS_WITH_REDUCERS, errs);
                }
                StepBody::Sequential
            }
            StepType::Parallel => {
                only_for("action", "an Action", errs);
                StepBody::Parallel { reducer: reducer(self, Reducer::default(), errs)? }
            }
            StepType::Map => {
                only_for("action", "an Action", errs);
                let map = match obj.get("map") {
                    Some(m) => self.map_spec(m, &obj.path_of("map"), errs)?,
                    None => MapSpec::default(),
                };
                StepBody::Map { map, reducer: reducer(self, Reducer::collect(), errs)? }
            }
            StepType::Branch => {
                only_for("action", "an Action", errs);
                only_for("reducer", PARENTS_WITH_REDUCERS, errs);
                let Some(b) = obj.get("branch") else {
                    errs.invalid(&obj.path_of("branch"), "required for a Branch step");
                    return None;
                };
                let branch = self.chooser(b, &obj.path_of("branch"), errs)?;
                StepBody::Branch { branch }
            }
            StepType::Action => {
                only_for("reducer", PARENTS_WITH_REDUCERS, errs);
                let Some(a) = obj.get("action") else {
                    errs.invalid(&obj.path_of("action"), "required for an Action step");
                    return None;
                };
                let path = obj.path_of("action");
                let action = action::action(a, &path, self.limits, self.pools, errs)?;
                if let Action::Api(api) = &action {
                    let refused = url::Url::parse(&api.url).map(|u| self.urls.check(&u));
                    if let Ok(Err(why)) = refused {
                        errs.refused(&format!("{path}.url"), why);
                        return None;
                    }
                }
                StepBody::Action { action }
            }
        };
        Some((name?, body))
    }

    fn name(&self, name: &str, path: &str, errs: &mut Errors) -> Option<String> {
        check_name(self.limits, name, path).map_err(|e| errs.push(e)).ok()?;
        Some(name.to_owned())
    }

    /// A child list given by id: each item a UUID string or `{id, mapper?}`.
    fn links(&mut self, value: &Value, path: &str, errs: &mut Errors) -> Option<Vec<ChildLink>> {
        let Value::Array(items) = value else {
            errs.invalid(path, format!("expected an array, found {}", type_name(value)));
            return None;
        };
        let mut links = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = index(path, i);
            let link = match item {
                Value::String(s) => {
                    parse_uuid(s, &at, errs).map(|id| ChildLink { id, mapper: None })
                }
                _ => Obj::new(item, &at, errs).and_then(|obj| {
                    obj.deny_unknown(REFERENCE_FIELDS, errs);
                    if obj.get("id").is_none() {
                        errs.invalid(&obj.path_of("id"), "required");
                    }
                    let mapper = obj
                        .get("mapper")
                        .and_then(|m| self.mapper(m, &obj.path_of("mapper"), errs));
                    Some(ChildLink { id: obj.uuid("id", errs)?, mapper })
                }),
            };
            links.extend(link);
        }
        Some(links)
    }

    fn mapper(&mut self, value: &Value, path: &str, errs: &mut Errors) -> Option<Mapper> {
        match self.script_object(value, path, &["js", "no-op"], errs)? {
            (_, Some(js)) => Some(Mapper::Js { js }),
            _ => Some(Mapper::NoOp),
        }
    }

    fn reducer(&mut self, value: &Value, path: &str, errs: &mut Errors) -> Option<Reducer> {
        match self.script_object(value, path, &["js", "last", "collect", "no-op"], errs)? {
            (_, Some(js)) => Some(Reducer::Js { js }),
            ("last", None) => Some(Reducer::Last),
            ("collect", None) => Some(Reducer::Collect),
            _ => Some(Reducer::NoOp),
        }
    }

    /// A Map's options: `{"items"?: "<js>", "maxConcurrency"?: N}`.
    fn map_spec(&mut self, value: &Value, path: &str, errs: &mut Errors) -> Option<MapSpec> {
        let obj = Obj::new(value, path, errs)?;
        obj.deny_unknown(&["items", "maxConcurrency"], errs);
        let items = match obj.str("items", errs) {
            Some(js) => Some(self.script(js, &obj.path_of("items"), errs)?),
            None => None,
        };
        let max_concurrency = match obj.get("maxConcurrency") {
            Some(_) => Some(obj.uint("maxConcurrency", 1, u64::from(u32::MAX), errs)? as u32),
            None => None,
        };
        Some(MapSpec { items, max_concurrency })
    }

    fn chooser(&mut self, value: &Value, path: &str, errs: &mut Errors) -> Option<Chooser> {
        let (_, js) = self.script_object(value, path, &["js"], errs)?;
        js.map(|js| Chooser::Js { js })
    }

    /// `{"type": one of types}`, with a compiled `js` when the type is `js`.
    fn script_object(
        &mut self,
        value: &Value,
        path: &str,
        types: &[&'static str],
        errs: &mut Errors,
    ) -> Option<(&'static str, Option<String>)> {
        let obj = Obj::new(value, path, errs)?;
        if obj.get("type").is_none() {
            errs.invalid(&obj.path_of("type"), "required");
            return None;
        }
        let choices: Vec<(&str, &'static str)> = types.iter().map(|t| (*t, *t)).collect();
        let kind = obj.choice("type", &choices, errs)?;
        if kind != "js" {
            obj.deny_unknown(&["type"], errs);
            return Some((kind, None));
        }
        obj.deny_unknown(&["type", "js"], errs);
        let js = obj.required_str("js", errs)?;
        Some((kind, Some(self.script(js, &obj.path_of("js"), errs)?)))
    }

    /// A script's source, within the size limit and compiled.
    fn script(&mut self, js: &str, js_path: &str, errs: &mut Errors) -> Option<String> {
        if js.len() > self.limits.max_script_bytes {
            errs.refused(
                js_path,
                format!(
                    "is {} bytes, more than the limit of {} (AETR_MAX_SCRIPT_BYTES)",
                    js.len(),
                    self.limits.max_script_bytes
                ),
            );
            return None;
        }
        if let Err(e) = self.scripts.check(js) {
            errs.refused(js_path, e.to_string());
            return None;
        }
        Some(js.to_owned())
    }
}

/// The state of a walk over a fat tree.
struct FatWalk {
    /// Each step defined so far, with the path of its first definition.
    defined: HashMap<Uuid, (Step, String)>,
    /// Ids in the order they first appear (pre-order), root first.
    order: Vec<Uuid>,
    seen: HashSet<Uuid>,
    references: Vec<Reference>,
}

/// The steps that may have a reducer, for messages.
const PARENTS_WITH_REDUCERS: &str = "a Parallel or a Map";

/// An Action has no children, a Map exactly one, and no step more than the limit.
/// A step's `inputSchema`: a JSON Schema (an object or a boolean) that compiles.
fn input_schema(obj: Obj<'_>, errs: &mut Errors) -> Option<InputSchema> {
    let value = obj.get("inputSchema").filter(|v| !v.is_null())?;
    let path = obj.path_of("inputSchema");
    if !matches!(value, Value::Object(_) | Value::Bool(_)) {
        errs.invalid(&path, format!("expected an object or a boolean, found {}", type_name(value)));
        return None;
    }
    match InputSchema::new(value.clone()) {
        Ok(schema) => Some(schema),
        Err(bad) => {
            let at = if bad.place.is_empty() { path } else { join(&path, &bad.place) };
            errs.refused(&at, format!("not a valid JSON Schema: {}", bad.message));
            None
        }
    }
}

fn check_children(
    body: &StepBody,
    children: &[ChildLink],
    obj: Obj<'_>,
    limits: &Limits,
    errs: &mut Errors,
) {
    if matches!(body, StepBody::Action { .. }) && !children.is_empty() {
        errs.invalid(&obj.path_of("children"), "an Action step has no children");
    } else if let Some(why) = crate::graph::map_children(body, children.len()) {
        errs.invalid(&obj.path_of("children"), why);
    } else if children.len() > limits.max_children {
        errs.refused(&obj.path_of("children"), too_many_children(children.len(), limits));
    }
}

fn too_many_children(n: usize, limits: &Limits) -> String {
    format!("has {n} children, more than the limit of {} (AETR_MAX_CHILDREN)", limits.max_children)
}

fn references_of(links: &[ChildLink], path: &str) -> Vec<Reference> {
    links
        .iter()
        .enumerate()
        .map(|(i, l)| Reference { id: l.id, path: join(&index(path, i), "id") })
        .collect()
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "the root"
    } else {
        path
    }
}

fn finish(errs: Errors) -> Result<(), FieldErrors> {
    match FieldErrors::from_vec(errs.into_vec()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A run's input: a JSON string is passed on raw, `null` is no input, and anything else is
/// passed on as its JSON text.
pub fn run_input(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A service's result, from a callback's body or a sync action's answer: trimmed of leading and
/// trailing whitespace, as AETR did, so that a service that ends its result with a newline
/// does not pass it on to every mapper downstream. Nothing left is no result.
pub fn service_result(text: String) -> Option<String> {
    let trimmed = text.trim();
    match trimmed.len() {
        0 => None,
        n if n == text.len() => Some(text),
        _ => Some(trimmed.to_owned()),
    }
}

/// Checks a step's name: not blank, within `AETR_MAX_NAME_CHARS`, no control character. `path`
/// is where an error says the name is.
pub fn check_name(limits: &Limits, name: &str, path: &str) -> Result<(), FieldError> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        Err(FieldError::invalid(path, "must not be empty"))
    } else if chars > limits.max_name_chars {
        Err(FieldError::refused(
            path,
            format!(
                "is {chars} characters, more than the limit of {} (AETR_MAX_NAME_CHARS)",
                limits.max_name_chars
            ),
        ))
    } else if name.chars().any(char::is_control) {
        Err(FieldError::invalid(path, "contains a control character"))
    } else {
        Ok(())
    }
}
