//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the schemas of the
//! engine's definition types (which the engine, free of HTTP concerns, does not describe).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::{Modify, OpenApi, ToSchema};

use super::{callbacks, health, metrics, pools, runs, schedules, scripts, steps};

#[derive(OpenApi)]
#[openapi(
    info(title = "aetr", description = "A workflow-tree orchestrator for HTTP services."),
    paths(
        steps::list, steps::create, steps::put_tree, steps::put_slim, steps::get_tree,
        steps::get_slim, steps::set_children, steps::parents, steps::delete, steps::clone,
        runs::start, runs::list, runs::get_run, runs::get_node, runs::children, runs::cancel,
        runs::retry, runs::remove::delete, runs::by_hand::complete, runs::by_hand::fail, runs::by_hand::redispatch,
        runs::history::events, runs::stats::counts, runs::stats::progress, callbacks::complete, callbacks::fail,
        runs::aetr::partial, runs::aetr::by_state, runs::aetr::active, runs::aetr::related,
        schedules::list, schedules::create, schedules::get, schedules::replace, schedules::delete,
        pools::list, pools::get, pools::put, pools::delete,
        scripts::try_script,
        health::healthz, health::readyz, health::ping, metrics::metrics,
    ),
    components(schemas(runs::DefinitionDoc)),
    modifiers(&ApiTokenAuth),
    tags(
        (name = "steps", description = "Step trees: define, read, compose and delete them."),
        (name = "runs", description = "Runs of step trees: start them, watch them, cancel and retry them."),
        (name = "schedules", description = "Runs started on the ticks of a cron expression, in a time zone."),
        (name = "pools", description = "Caps on how many attempts of the actions that name a pool are Executing at once, across all runs and servers, and on how many of their POSTs start a second."),
        (name = "scripts", description = "Trying a mapper, reducer, Branch function or Map items function on data, or on a run node's real data, without changing anything."),
        (name = "callbacks", description = "Where services report an attempt's result or failure, with the token of the `aetr` URL they were given."),
    ),
)]
struct ApiDoc;

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| e.to_string()));

/// The methods of each path of the document, as an `Allow` header's value.
static ALLOWED: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let doc = ApiDoc::openapi();
    let methods = |item: &utoipa::openapi::PathItem| {
        let all = [
            ("GET", item.get.is_some()),
            ("PUT", item.put.is_some()),
            ("POST", item.post.is_some()),
            ("DELETE", item.delete.is_some()),
            ("PATCH", item.patch.is_some()),
        ];
        let named: Vec<&str> = all.iter().filter(|(_, has)| *has).map(|(m, _)| *m).collect();
        named.join(", ")
    };
    doc.paths.paths.iter().map(|(path, item)| (path.clone(), methods(item))).collect()
});

/// The methods that a route pattern (such as `/api/v1/steps/{id}`) allows, for a 405's `Allow`.
pub fn allowed_methods(pattern: &str) -> Option<&'static str> {
    ALLOWED.get(pattern).map(String::as_str)
}

/// The API tokens (`AETR_API_TOKENS`): a bearer scheme that every operation needs unless it
/// says otherwise (callbacks, health, this document), and the 401 that each then may answer.
struct ApiTokenAuth;

impl Modify for ApiTokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{Ref, ResponseBuilder};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("One of the server's API tokens, when AETR_API_TOKENS or AETR_API_TOKENS_FILE is set."))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("apiToken", SecurityScheme::Http(scheme));
        openapi.security = Some(vec![SecurityRequirement::new("apiToken", Vec::<String>::new())]);
        let unauthorized = ResponseBuilder::new()
            .description("No API token, or a wrong one (when API tokens are on).")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                if operation.security.is_none() {
                    operation.responses.responses.insert("401".into(), unauthorized.clone().into());
                }
            }
        }
    }
}

/// `GET /api/v1/openapi.json`
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT.as_str())
}

/// A node's or a run's state. `Pending`: not yet sent (this includes waiting out a retry's
/// backoff); `Executing`: sent and waiting for the callback, or, for a parent, children in
/// progress; `Skipped`: below a Branch, not chosen (a run is never Skipped).
#[derive(Debug, ToSchema)]
#[schema(as = State)]
#[allow(dead_code)]
pub enum StateDoc {
    Pending,
    Executing,
    Complete,
    Error,
    Cancelled,
    Skipped,
}

/// The kind of a step.
#[derive(Debug, ToSchema)]
#[schema(as = StepType)]
#[allow(dead_code)]
pub enum StepTypeDoc {
    Sequential,
    Parallel,
    Map,
    Branch,
    Action,
}

/// A Map's options: `items`, the source of `function apply(data)`, gets the Map's input and
/// returns the list of items (without it, the input must be the JSON text of the list); each
/// item is the input of one instance of the Map's one child (a string raw, anything else as
/// its JSON text). `maxConcurrency` (at least 1; default: no limit) caps the instances started
/// and not finished. A Map's reducer gets the instances' results in item order; its default is
/// `collect`. More items than `AETR_MAX_MAP_ITEMS` fail the Map.
#[derive(Debug, ToSchema)]
#[schema(as = Map)]
#[allow(dead_code)]
pub struct MapDoc {
    items: Option<String>,
    #[schema(minimum = 1)]
    #[schema(rename = "maxConcurrency")]
    max_concurrency: Option<u32>,
}

/// A Branch's function: `{"type":"js","js":"function apply(data) {...}"}` gets the Branch's
/// input and returns the name of the child to run, or its 0-based index; `null` or `undefined`
/// runs none (the Branch completes with its input). The children not chosen are `Skipped`.
#[derive(Debug, ToSchema)]
#[schema(as = Branch)]
#[allow(dead_code)]
pub struct BranchDoc {
    #[schema(rename = "type")]
    kind: BranchKindDoc,
    /// The source of `function apply(data)`.
    js: String,
}

#[derive(Debug, ToSchema)]
#[schema(as = BranchType, rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum BranchKindDoc {
    Js,
}

/// A leaf's action: `{"type":"no-op"}` completes at once with its input as its result;
/// `{"type":"api", url, ...}` POSTs the input to `url` with `aetr=<callback-url>` added;
/// `{"type":"wait","seconds":N}` is Executing for N seconds, then completes with its input;
/// `{"type":"manual"}` is Executing until a person completes or fails it by hand
/// (`POST /runs/{id}/nodes/{nodeId}/complete` or `/fail`).
#[derive(Debug, ToSchema)]
#[schema(as = Action, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ActionDoc {
    #[schema(rename = "type")]
    kind: ActionKindDoc,
    /// `api`: an absolute http(s) URL, without an `aetr` query parameter.
    url: Option<String>,
    /// Sent after aetr's own headers, which they override, in this order.
    headers: Option<BTreeMap<String, String>>,
    retry: Option<RetryDoc>,
    /// How long the POST may take (default 30).
    #[schema(minimum = 1, maximum = 3600)]
    timeout_seconds: Option<u32>,
    /// `api` and `manual`: how long to wait for the callback, or for a decision by hand:
    /// absent for the server's default, `null` to wait for ever.
    callback_timeout_seconds: Option<u64>,
    /// `wait`: how long, in seconds (at most a year).
    #[schema(minimum = 0, maximum = 31536000)]
    seconds: Option<u32>,
    on_timeout: Option<OnTimeoutDoc>,
    mode: Option<ModeDoc>,
}

#[derive(Debug, ToSchema)]
#[schema(as = ActionType, rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum ActionKindDoc {
    Api,
    NoOp,
    Wait,
    Manual,
}

/// Retries of a POST that failed with a connection error, a timeout, a 5xx or a 429:
/// exponential backoff with full jitter.
#[derive(Debug, ToSchema)]
#[schema(as = RetryPolicy, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct RetryDoc {
    /// Counts the first attempt (default 3).
    #[schema(minimum = 1, maximum = 100)]
    max_attempts: u32,
    /// The first backoff (default 1000).
    backoff_ms: u64,
    /// The longest backoff (default 60000).
    max_backoff_ms: u64,
}

/// What happens when the callback timeout passes: the node fails, or is sent again.
#[derive(Debug, ToSchema)]
#[schema(as = OnTimeout, rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum OnTimeoutDoc {
    Fail,
    Retry,
}

/// `callback`: the result comes by callback. `sync`: the 2xx answer's body is the result.
#[derive(Debug, ToSchema)]
#[schema(as = Mode, rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum ModeDoc {
    Callback,
    Sync,
}

/// A Parallel step's reducer: `last` (the default: the last child's result, in child order),
/// `no-op` (no result), `collect` (the JSON text of an array of the results: each as its JSON
/// value when it parses as JSON, as a string otherwise, `null` where there was none), or `js`:
/// `function apply(results) {...}` over the children's mapped results, in child order.
#[derive(Debug, ToSchema)]
#[schema(as = Reducer)]
#[allow(dead_code)]
pub struct ReducerDoc {
    #[schema(rename = "type")]
    kind: ReducerKindDoc,
    /// With `js`: the source of `function apply(results)`.
    js: Option<String>,
}

#[derive(Debug, ToSchema)]
#[schema(as = ReducerType, rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum ReducerKindDoc {
    Last,
    NoOp,
    Collect,
    Js,
}

/// A mapper on a parent→child link: `no-op`, or `js`: `function apply(data) {...}` over the
/// child's result.
#[derive(Debug, ToSchema)]
#[schema(as = Mapper)]
#[allow(dead_code)]
pub struct MapperDoc {
    #[schema(rename = "type")]
    kind: MapperKindDoc,
    /// With `js`: the source of `function apply(data)`.
    js: Option<String>,
}

#[derive(Debug, ToSchema)]
#[schema(as = MapperType, rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum MapperKindDoc {
    NoOp,
    Js,
}
