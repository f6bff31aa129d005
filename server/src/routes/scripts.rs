//! `/api/v1/scripts/try`: runs a mapper, reducer, Branch function or Map items function on
//! given data, or on a run node's real data, in the same sandboxed script workers and with the
//! same limits as runs, and changes nothing.

use std::time::Instant;

use actix_web::{web, HttpResponse};
use aetr_engine::parse::run_input;
use aetr_engine::{FieldError, FieldErrors};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::http::{body, ApiError, ErrorBody};
use crate::scripts::OwnedCall;
use crate::store::{nodes, views};

const TRY: &str = "a script to try (AETR_MAX_DEFINITION_BYTES plus AETR_MAX_INPUT_BYTES)";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/scripts/try").post(try_script));
}

/// Which of a tree's scripts it is, which says what its `apply` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(as = ScriptKind, rename_all = "lowercase")]
pub enum Kind {
    /// `apply(data)` gets a child's result and returns what its parent gets.
    Mapper,
    /// `apply(results)` gets the children's mapped results, in child order.
    Reducer,
    /// `apply(data)` gets the Branch's input and returns the name or index of the child to run.
    Branch,
    /// `apply(data)` gets the Map's input and returns its list of items.
    Items,
}

impl Kind {
    const NAMES: [(&'static str, Kind); 4] = [
        ("mapper", Kind::Mapper),
        ("reducer", Kind::Reducer),
        ("branch", Kind::Branch),
        ("items", Kind::Items),
    ];

    fn parse(value: &Value) -> Result<Kind, String> {
        let found = value.as_str().and_then(|s| Self::NAMES.iter().find(|(n, _)| *n == s));
        found.map(|(_, kind)| *kind).ok_or_else(|| {
            format!(
                "expected one of \"mapper\", \"reducer\", \"branch\" or \"items\", found {value}"
            )
        })
    }
}

/// `POST /scripts/try`'s body.
#[derive(Debug, ToSchema)]
#[schema(as = ScriptTry)]
#[allow(dead_code)]
pub struct TryDoc {
    kind: Kind,
    /// The script: JavaScript that defines `function apply(...)`.
    #[schema(min_length = 1)]
    js: String,
    /// What `apply` gets. For a mapper, a Branch or an items function: a string is the data
    /// as it is, null is no data, and any other JSON is taken as its JSON text. For a
    /// reducer: an array of results, each a string, null or other JSON (taken as its text).
    /// Absent: null, or `[]` for a reducer.
    input: Option<Value>,
    /// Instead of `input`: the id of a run's node whose real data the script gets, as that
    /// node's script would: a mapper its result, a reducer its children's mapped results, a
    /// Branch or an items function its input.
    node: Option<Uuid>,
}

/// What a script made of its input: `result`, or `error` if it failed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tried {
    /// What `apply` got (with `node`: the node's real data).
    input: Value,
    /// What it returned, as the run would keep it; null: nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    result: Option<Option<String>>,
    /// Why it failed: a compile error, what it threw, or a limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// How long the call took, in milliseconds.
    took_ms: u64,
}

/// Runs a script on given data, or on a run node's real data, and says what it returned. Runs
/// and definitions are not changed.
#[utoipa::path(post, path = "/api/v1/scripts/try", tag = "scripts",
    request_body(content = TryDoc, description = "`{kind, js, input}` or `{kind, js, node}`."),
    responses(
        (status = 200, description = "The script ran: its result, or its error (a compile error, what it threw, a limit).", body = Tried),
        (status = 400, description = "A malformed body, naming each bad field.", body = ErrorBody),
        (status = 404, description = "`node` names no node of any run.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn try_script(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.max_definition_bytes.saturating_add(state.max_input_bytes);
    let request = parse(&body::json(payload, limit, TRY).await?)?;
    let call = match request.data {
        Data::Given(call) => call,
        Data::Node(id) => node_data(&state, request.kind, id).await?,
    };
    let input = shown(&call);
    let started = Instant::now();
    let outcome = state.runs.try_script(request.js, call).await;
    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (result, error) = match outcome {
        Ok(result) => (Some(result), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(HttpResponse::Ok().json(Tried { input, result, error, took_ms }))
}

/// A try, as read from its body.
struct Request {
    kind: Kind,
    js: String,
    data: Data,
}

enum Data {
    Given(OwnedCall),
    Node(Uuid),
}

/// Reads the body, naming every bad field.
fn parse(value: &Value) -> Result<Request, ApiError> {
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid("", "expected an object: {\"kind\", \"js\", \"input\"}"));
    };
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| errors.push(FieldError::invalid(field, message));
    for name in fields.keys().filter(|k| !["kind", "js", "input", "node"].contains(&k.as_str())) {
        bad(name, "unknown field: expected kind, js, input or node".to_owned());
    }
    let kind = match fields.get("kind") {
        None => Err("required".to_owned()),
        Some(v) => Kind::parse(v),
    }
    .map_err(|e| bad("kind", e))
    .ok();
    let js = match fields.get("js") {
        Some(Value::String(js)) if !js.trim().is_empty() => Some(js.clone()),
        Some(Value::String(_)) => {
            bad("js", "the script is empty: it must define function apply".to_owned());
            None
        }
        Some(other) => {
            bad("js", format!("expected the script's source as a string, found {other}"));
            None
        }
        None => {
            bad("js", "required".to_owned());
            None
        }
    };
    let node = match fields.get("node") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let id = v.as_str().and_then(|s| Uuid::try_parse(s).ok());
            if id.is_none() {
                bad("node", format!("expected a node's id, found {v}"));
            }
            id
        }
    };
    let given = fields.get("input").filter(|v| !v.is_null());
    if node.is_some() && given.is_some() {
        bad("input", "give input or node, not both".to_owned());
    }
    let call = kind.and_then(|kind| given_call(kind, given, &mut bad));
    if let Some(errors) = FieldErrors::from_vec(errors) {
        return Err(errors.into());
    }
    let (Some(kind), Some(js), Some(call)) = (kind, js, call) else {
        return Err(ApiError::invalid("", "incomplete body"));
    };
    let data = match node {
        Some(id) => Data::Node(id),
        None => Data::Given(call),
    };
    Ok(Request { kind, js, data })
}

/// The call that a given input makes for `kind`; `None` after naming what is wrong with it.
fn given_call(
    kind: Kind,
    input: Option<&Value>,
    bad: &mut impl FnMut(&str, String),
) -> Option<OwnedCall> {
    match (kind, input) {
        (Kind::Reducer, None) => Some(OwnedCall::Reduce(Vec::new())),
        (Kind::Reducer, Some(Value::Array(items))) => {
            Some(OwnedCall::Reduce(items.iter().map(run_input).collect()))
        }
        (Kind::Reducer, Some(other)) => {
            bad("input", format!("a reducer gets an array of results, found {other}"));
            None
        }
        (_, input) => Some(OwnedCall::Map(input.and_then(run_input))),
    }
}

/// What a node's script of this kind gets, read from the run.
async fn node_data(state: &AppState, kind: Kind, id: Uuid) -> Result<OwnedCall, ApiError> {
    let no_node = || ApiError::NotFound(format!("no run has a node with id {id}"));
    let (run, idx) = state.runs.node_of(id).await?.ok_or_else(no_node)?;
    let client = state.pool.get().await?;
    Ok(match kind {
        Kind::Reducer => OwnedCall::Reduce(nodes::children_outputs(&client, run, idx).await?),
        Kind::Mapper | Kind::Branch | Kind::Items => {
            let row = views::node(&client, run, idx).await?.ok_or_else(no_node)?;
            OwnedCall::Map(if kind == Kind::Mapper { row.result } else { row.input })
        }
    })
}

/// A call's input as the answer shows it.
fn shown(call: &OwnedCall) -> Value {
    let text = |t: &Option<String>| t.clone().map_or(Value::Null, Value::String);
    match call {
        OwnedCall::Map(data) => text(data),
        OwnedCall::Reduce(results) => Value::Array(results.iter().map(text).collect()),
    }
}
