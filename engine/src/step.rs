//! The step model: one stored step (a node of a tree) and its parts, in design.md's JSON shape.
//!
//! These types are built from API input by [`crate::parse`], which names the path of every
//! error. Their serde implementations give the JSON that the API returns, and that the server
//! stores: they are for trusted data, and only [`crate::parse`] validates.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schema::InputSchema;

/// The kind of a step (`stepType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepType {
    Sequential,
    Parallel,
    Map,
    Branch,
    Action,
}

impl StepType {
    pub const ALL: [StepType; 5] = [
        StepType::Sequential,
        StepType::Parallel,
        StepType::Map,
        StepType::Branch,
        StepType::Action,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Sequential => "Sequential",
            StepType::Parallel => "Parallel",
            StepType::Map => "Map",
            StepType::Branch => "Branch",
            StepType::Action => "Action",
        }
    }
}

impl std::fmt::Display for StepType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step: a node whose children are other steps, referred to by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub id: Uuid,
    pub name: String,
    #[serde(flatten)]
    pub body: StepBody,
    /// What the step's input must match (`inputSchema`).
    #[serde(default, rename = "inputSchema", skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<InputSchema>,
    pub children: Vec<ChildLink>,
}

impl Step {
    pub fn step_type(&self) -> StepType {
        self.body.step_type()
    }
}

/// What a step does, by kind. Only a Parallel or a Map step has a reducer, only a Map its
/// items, only a Branch its function, and only an Action an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stepType")]
pub enum StepBody {
    Sequential,
    Parallel {
        #[serde(default)]
        reducer: Reducer,
    },
    /// Runs its one child once per item of a list.
    Map {
        #[serde(default)]
        map: MapSpec,
        #[serde(default = "Reducer::collect")]
        reducer: Reducer,
    },
    Branch {
        branch: Chooser,
    },
    Action {
        action: Action,
    },
}

impl StepBody {
    pub fn step_type(&self) -> StepType {
        match self {
            StepBody::Sequential => StepType::Sequential,
            StepBody::Parallel { .. } => StepType::Parallel,
            StepBody::Map { .. } => StepType::Map,
            StepBody::Branch { .. } => StepType::Branch,
            StepBody::Action { .. } => StepType::Action,
        }
    }

    /// A Branch's function.
    pub fn chooser(&self) -> Option<&Chooser> {
        match self {
            StepBody::Branch { branch } => Some(branch),
            _ => None,
        }
    }

    pub fn action(&self) -> Option<&Action> {
        match self {
            StepBody::Action { action } => Some(action),
            _ => None,
        }
    }

    pub fn reducer(&self) -> Option<&Reducer> {
        match self {
            StepBody::Parallel { reducer } | StepBody::Map { reducer, .. } => Some(reducer),
            _ => None,
        }
    }

    /// A Map's options.
    pub fn map(&self) -> Option<&MapSpec> {
        match self {
            StepBody::Map { map, .. } => Some(map),
            _ => None,
        }
    }
}

/// A Map's options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapSpec {
    /// The source of `apply(data)`, which gets the Map's input and returns the list of items
    /// (or its JSON text). Without it, the input is the JSON text of the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// At most this many instances started and not finished; `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

/// A parent→child link. Links are keyed by position, so a child list may name a step twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildLink {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapper: Option<Mapper>,
}

/// Transforms a child's result before it moves on. `None` and `NoOp` both pass it unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Mapper {
    NoOp,
    Js { js: String },
}

impl Mapper {
    /// The script to run, if any.
    pub fn script(&self) -> Option<&str> {
        match self {
            Mapper::NoOp => None,
            Mapper::Js { js } => Some(js),
        }
    }
}

/// A Branch's function: `apply(data)` gets the Branch's input and returns the name or the
/// 0-based index of the child to run, or `null` for none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Chooser {
    Js { js: String },
}

impl Chooser {
    pub fn script(&self) -> &str {
        match self {
            Chooser::Js { js } => js,
        }
    }
}

/// Combines a Parallel step's children's mapped results, in child order, or a Map's instances'
/// results, in item order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Reducer {
    /// The last child's result, in child order. The default.
    #[default]
    Last,
    /// No result.
    NoOp,
    /// The JSON text of an array of the results: each as its JSON value when it parses as
    /// JSON, as a string otherwise, and `null` where there was none.
    Collect,
    Js {
        js: String,
    },
}

impl Reducer {
    /// A Map's default reducer.
    pub fn collect() -> Self {
        Reducer::Collect
    }

    /// The script to run, if any.
    pub fn script(&self) -> Option<&str> {
        match self {
            Reducer::Js { js } => Some(js),
            _ => None,
        }
    }

    /// The result of a reducer that is not a script. `None` for a script.
    pub fn apply_builtin(&self, results: &[Option<String>]) -> Option<Option<String>> {
        match self {
            Reducer::Last => Some(results.last().cloned().flatten()),
            Reducer::NoOp => Some(None),
            Reducer::Collect => Some(Some(collect(results))),
            Reducer::Js { .. } => None,
        }
    }
}

/// The `collect` reducer's result.
fn collect(results: &[Option<String>]) -> String {
    let items = results.iter().map(|r| match r {
        None => serde_json::Value::Null,
        Some(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone()))
        }
    });
    serde_json::Value::Array(items.collect()).to_string()
}

/// A leaf's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Action {
    /// POSTs to a service, which calls back (or answers, in sync mode).
    #[serde(rename = "api")]
    Api(ApiAction),
    /// Completes at once, with its input as its result.
    #[serde(rename = "no-op")]
    NoOp,
    /// Executing for `seconds`, then completes with its input as its result. POSTs nowhere.
    #[serde(rename = "wait")]
    Wait { seconds: u32 },
    /// Executing until a person completes or fails it by hand (an approval). POSTs nowhere.
    #[serde(rename = "manual")]
    Manual(ManualAction),
}

impl Action {
    /// Its `type`, as the API spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Api(_) => "api",
            Action::NoOp => "no-op",
            Action::Wait { .. } => "wait",
            Action::Manual(_) => "manual",
        }
    }

    /// How long the node waits for what ends it, given the server-wide default: an `api`
    /// action's callback, a `manual` action's decision. `None`: for ever (or no wait at all).
    pub fn callback_timeout_seconds(&self, server_default: Option<u64>) -> Option<u64> {
        match self {
            Action::Api(api) => api.callback_timeout_seconds(server_default),
            Action::Manual(manual) => manual.callback_timeout_seconds.resolve(server_default),
            Action::NoOp | Action::Wait { .. } => None,
        }
    }
}

/// A `manual` action's options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualAction {
    #[serde(default, skip_serializing_if = "CallbackTimeout::is_default")]
    pub callback_timeout_seconds: CallbackTimeout,
}

/// An `api` action's options, as the user gave them. The `effective_*` methods apply defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiAction {
    pub url: String,
    /// Sent after aetr's own headers, which they override. Kept in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "header_map")]
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "CallbackTimeout::is_default")]
    pub callback_timeout_seconds: CallbackTimeout,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// The pool whose slots its attempts take (at most that many Executing at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

/// The POST timeout when `timeoutSeconds` is absent.
pub const DEFAULT_POST_TIMEOUT_SECONDS: u32 = 30;

impl ApiAction {
    pub fn new(url: impl Into<String>) -> Self {
        ApiAction {
            url: url.into(),
            headers: Vec::new(),
            retry: None,
            timeout_seconds: None,
            callback_timeout_seconds: CallbackTimeout::Default,
            on_timeout: None,
            mode: None,
            pool: None,
        }
    }

    pub fn effective_retry(&self) -> RetryPolicy {
        self.retry.unwrap_or_default()
    }

    pub fn effective_timeout_seconds(&self) -> u32 {
        self.timeout_seconds.unwrap_or(DEFAULT_POST_TIMEOUT_SECONDS)
    }

    pub fn effective_mode(&self) -> Mode {
        self.mode.unwrap_or_default()
    }

    pub fn effective_on_timeout(&self) -> OnTimeout {
        self.on_timeout.unwrap_or_default()
    }

    /// How long to wait for the callback, given the server-wide default. `None`: for ever.
    /// A sync action waits for no callback.
    pub fn callback_timeout_seconds(&self, server_default: Option<u64>) -> Option<u64> {
        if self.effective_mode() == Mode::Sync {
            return None;
        }
        self.callback_timeout_seconds.resolve(server_default)
    }
}

/// `callbackTimeoutSeconds`: absent (the server's default), `null` (wait for ever), or seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CallbackTimeout {
    #[default]
    Default,
    Never,
    Seconds(u64),
}

impl CallbackTimeout {
    pub fn is_default(&self) -> bool {
        *self == CallbackTimeout::Default
    }

    /// The seconds to wait, given the server-wide default. `None`: for ever.
    pub fn resolve(self, server_default: Option<u64>) -> Option<u64> {
        match self {
            CallbackTimeout::Default => server_default,
            CallbackTimeout::Never => None,
            CallbackTimeout::Seconds(s) => Some(s),
        }
    }
}

impl Serialize for CallbackTimeout {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CallbackTimeout::Seconds(n) => s.serialize_u64(*n),
            _ => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for CallbackTimeout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Present and null means "never"; absent is handled by `#[serde(default)]`.
        Ok(match Option::<u64>::deserialize(d)? {
            Some(n) => CallbackTimeout::Seconds(n),
            None => CallbackTimeout::Never,
        })
    }
}

/// `retry`: how many attempts, and the exponential backoff between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Counts the first attempt.
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, backoff_ms: 1_000, max_backoff_ms: 60_000 }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (1-based), with full jitter: a uniform
    /// draw (`jitter` in `[0, 1)`) from zero to the capped exponential backoff.
    pub fn delay_ms(&self, attempt: u32, jitter: f64) -> u64 {
        let exp = attempt.saturating_sub(1).min(63);
        let ceiling = self.backoff_ms.saturating_mul(1u64 << exp).min(self.max_backoff_ms);
        (ceiling as f64 * jitter.clamp(0.0, 1.0)) as u64
    }
}

/// What happens when the callback timeout passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnTimeout {
    #[default]
    Fail,
    Retry,
}

/// `callback`: the POST is accepted and the result comes by callback. `sync`: the 2xx answer's
/// body is the result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Callback,
    Sync,
}

/// Headers as a JSON object, keeping their order.
mod header_map {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(headers: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(headers.len()))?;
        for (k, v) in headers {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    out.push(pair);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Pairs)
    }
}
