//! The in-process boa runner: [`BoaRunner`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use boa_ast::scope::Scope;
use boa_ast::{Declaration, StatementListItem};
use boa_engine::builtins::error::Error as ErrorData;
use boa_engine::builtins::promise::PromiseState;
use boa_engine::error::{EngineError, RuntimeLimitError};
use boa_engine::interner::Interner;
use boa_engine::job::{GenericJob, Job, JobExecutor, NativeAsyncJob, PromiseJob};
use boa_engine::module::IdleModuleLoader;
use boa_engine::object::builtins::JsArray;
use boa_engine::realm::Realm;
use boa_engine::script::Script;
use boa_engine::string::{CodePoint, JsStrVariant};
use boa_engine::{
    js_string, Context, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue, Source,
};
use boa_parser::Parser;

use super::{ScriptCall, ScriptError, ScriptRunner};

/// Sources whose brackets (`(`, `[`, `{`) nest deeper than this are refused before parsing.
///
/// boa's parser and compiler recurse on nesting, using up to about 30 KiB of native stack per
/// bracket in a release build (85 KiB unoptimised): 48 levels fit a 2 MiB thread stack with
/// room to spare.
const MAX_NESTING: usize = 48;

/// The message of a script that does not declare `apply`.
const MISSING_APPLY: &str = "script must define a function apply(...)";

/// Limits and sizes of a [`BoaRunner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoaRunnerConfig {
    /// How many iterations one loop (one frame) may run. Also bounds the promise jobs one call
    /// may run.
    pub loop_iteration_limit: u64,
    /// How deep JavaScript calls may nest (including calls made back from builtins).
    pub recursion_limit: usize,
    /// How many values boa's VM stack may hold.
    pub stack_size_limit: usize,
    /// The longest result, in bytes of UTF-8, that a call may return.
    pub max_result_bytes: usize,
    /// How many compiled scripts to keep. At least one is always kept.
    pub cache_capacity: usize,
    /// The most native stack that a new script's parse on its own thread may reserve.
    ///
    /// That stack is sized from the source, as an upper bound of what parsing it can need (see
    /// [`BoaRunner`]), then capped at this. The default caps nothing below the 4 GiB past which
    /// a source is refused. A process whose address space is limited and whose crash is
    /// contained (a script worker) sets it lower: a hostile source could then overflow the
    /// stack and abort the process, and an ordinary one still parses.
    pub max_parse_stack_bytes: usize,
}

impl Default for BoaRunnerConfig {
    /// Limits that are safe on a 2 MiB thread stack, even in a debug build.
    fn default() -> Self {
        Self {
            loop_iteration_limit: 10_000_000,
            recursion_limit: 400,
            stack_size_limit: 1024 * 1024,
            max_result_bytes: 16 * 1024 * 1024,
            cache_capacity: 256,
            max_parse_stack_bytes: usize::try_from(MAX_PARSE_STACK).unwrap_or(usize::MAX),
        }
    }
}

/// Runs scripts in boa, in this thread.
///
/// One runner owns one boa [`Context`]; it is not `Send`, so use one per thread. Its module
/// loader is boa's `IdleModuleLoader`, so `import()` never reads a file: the promise it returns
/// rejects with "module resolution is disabled for this context".
///
/// # Isolation
///
/// Every distinct script gets its own [`Realm`]: its own global object and its own builtins
/// (`Array.prototype`, `JSON`, ...). The source is evaluated as a script at the top level of
/// that realm, so a leading `"use strict"` applies to the whole script as usual. Two scripts
/// that both declare `function apply` do not collide, and a script that mutates its global
/// object or its builtins (`globalThis.x = 1`, `Array.prototype.map = ...`) changes only its
/// own realm. Such changes do persist from one call of that script to its next: the realm lives
/// as long as the script stays in the cache. A script must not rely on its global state being
/// fresh, nor on it persisting, since an evicted script is compiled again in a fresh realm.
///
/// # Caching
///
/// Each distinct source is parsed, compiled and evaluated once (about 0.6 ms in a release
/// build); the resulting `apply` is kept in a cache keyed by the exact source text and bounded
/// by [`BoaRunnerConfig::cache_capacity`], evicting the least recently used script when full.
/// A cached realm costs about 220 KiB. Failures to compile are cached too: a fresh realm makes
/// compiling deterministic.
///
/// # Promises
///
/// After `apply` returns, the promise jobs it queued are run. If `apply` returned a promise
/// (an `async function apply` does), its fulfilled value is the result and its rejection is
/// [`ScriptError::Thrown`]; a promise still pending once no job is left is
/// [`ScriptError::Thrown`] too ("apply returned a promise that never settles"). A call may run
/// at most [`BoaRunnerConfig::loop_iteration_limit`] jobs ("promise job limit exceeded"). Jobs
/// never outlive their call. There are no timers.
///
/// # Limits
///
/// boa bounds loop iterations (per loop, per frame, and in some builtins such as
/// `String.prototype.repeat`), the depth of calls (including calls back from builtins) and its
/// VM stack; hitting one is [`ScriptError::Limit`], which a script cannot catch. boa does not
/// bound the time or memory spent in builtins, so scripts from users must run in a process with
/// CPU and memory limits, as the design's script workers do.
///
/// boa's parser and compiler recurse on the nesting of the source and need far more native
/// stack than threads usually have for a hostile source (a stack overflow aborts the process).
/// So [`ScriptRunner::check`] parses on a thread of its own, with a stack sized from the
/// source, and both `check` and `call` refuse sources whose brackets nest more than 48 deep.
/// That bracket count is a heuristic (brackets in strings fool it): `call` compiles on the
/// runner's thread, which should have a stack of a few MiB or more.
pub struct BoaRunner {
    config: BoaRunnerConfig,
    context: Context,
    jobs: Rc<CallJobs>,
    cache: HashMap<String, Entry>,
    /// Outcomes of [`ScriptRunner::check`], bounded like `cache` (cleared when full).
    checked: HashMap<String, Result<(), ScriptError>>,
    /// A clock for least-recently-used eviction: the number of cache look-ups so far.
    tick: u64,
}

impl fmt::Debug for BoaRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoaRunner")
            .field("config", &self.config)
            .field("cached_scripts", &self.cache.len())
            .finish_non_exhaustive()
    }
}

/// A cached script: its compiled form (or why it does not compile) and when it was last used.
struct Entry {
    compiled: Result<Compiled, ScriptError>,
    last_used: u64,
}

/// A script evaluated in its own realm.
struct Compiled {
    realm: Realm,
    /// The script's `apply`.
    apply: JsObject,
    /// The realm's own `JSON.stringify`, taken before the script ran.
    stringify: JsObject,
}

impl Default for BoaRunner {
    fn default() -> Self {
        Self::new(BoaRunnerConfig::default())
    }
}

impl BoaRunner {
    /// A runner with its own boa context: module loading disabled, limits from `config`.
    ///
    /// # Panics
    ///
    /// If boa cannot build a context, which it only refuses for blocking contexts (not used).
    #[must_use]
    pub fn new(config: BoaRunnerConfig) -> Self {
        let jobs = Rc::new(CallJobs::default());
        let mut context = Context::builder()
            .module_loader(Rc::new(IdleModuleLoader))
            .job_executor(Rc::clone(&jobs))
            .build()
            .expect("a non-blocking boa context can always be built");
        let limits = context.runtime_limits_mut();
        limits.set_loop_iteration_limit(config.loop_iteration_limit);
        limits.set_recursion_limit(config.recursion_limit);
        limits.set_stack_size_limit(config.stack_size_limit);
        Self { config, context, jobs, cache: HashMap::new(), checked: HashMap::new(), tick: 0 }
    }

    /// The limits this runner was built with.
    #[must_use]
    pub fn config(&self) -> &BoaRunnerConfig {
        &self.config
    }

    /// How many scripts are cached, including scripts cached as failing to compile.
    #[must_use]
    pub fn cached_scripts(&self) -> usize {
        self.cache.len()
    }

    /// Makes sure `source` is in the cache, compiling it if needed, and marks it used.
    fn ensure_cached(&mut self, source: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.cache.get_mut(source) {
            entry.last_used = tick;
            return;
        }
        let compiled = self.compile(source);
        if self.cache.len() >= self.config.cache_capacity.max(1) {
            self.evict();
        }
        self.cache.insert(source.to_owned(), Entry { compiled, last_used: tick });
    }

    /// Drops the least recently used script.
    fn evict(&mut self) {
        let oldest = self
            .cache
            .iter()
            .min_by_key(|(_, entry)| entry.last_used)
            .map(|(source, _)| source.clone());
        if let Some(oldest) = oldest {
            self.cache.remove(&oldest);
        }
    }

    /// Parses, compiles and evaluates `source` in a new realm, and takes its `apply`.
    fn compile(&mut self, source: &str) -> Result<Compiled, ScriptError> {
        check_source(source, self.config.max_parse_stack_bytes)?;
        let Self { context, jobs, .. } = self;
        let realm = context
            .create_realm()
            .map_err(|err| ScriptError::Compile(format!("cannot create a realm: {err}")))?;
        let old_realm = context.enter_realm(realm.clone());
        let result = evaluate(source, &realm, jobs, context);
        context.enter_realm(old_realm);
        let compiled = match result {
            Ok(Evaluated::Apply { apply, stringify }) => Ok(Compiled { realm, apply, stringify }),
            Ok(Evaluated::ParseError(message)) => Err(ScriptError::Compile(message)),
            Ok(Evaluated::NoApply) => Err(ScriptError::Compile(MISSING_APPLY.to_owned())),
            Err(err) => Err(script_error(&err, jobs, context)),
        };
        jobs.clear();
        compiled
    }
}

/// What evaluating a script's top level gave.
enum Evaluated {
    /// The script's `apply`, and its realm's `JSON.stringify`.
    Apply { apply: JsObject, stringify: JsObject },
    /// boa's parser refused the source.
    ParseError(String),
    /// After the script ran, its global `apply` was not a function.
    NoApply,
}

/// Evaluates the script in `realm`, which the context has entered, and runs the promise jobs
/// that its top level queued.
fn evaluate(
    source: &str,
    realm: &Realm,
    jobs: &CallJobs,
    context: &mut Context,
) -> JsResult<Evaluated> {
    let json = realm.intrinsics().objects().json();
    let Some(stringify) = json.get(js_string!("stringify"), context)?.as_callable() else {
        return Err(JsNativeError::typ().with_message("JSON.stringify is not callable").into());
    };
    let script = match Script::parse(Source::from_bytes(source), Some(realm.clone()), context) {
        Ok(script) => script,
        Err(err) => {
            let message = err
                .as_native()
                .map_or_else(|| err.to_string(), |native| native.message().to_owned());
            return Ok(Evaluated::ParseError(message));
        }
    };
    script.evaluate(context)?;
    if !jobs.is_empty() {
        jobs.run(context)?;
    }
    let apply = context.global_object().get(js_string!("apply"), context)?;
    Ok(match apply.as_callable() {
        Some(apply) => Evaluated::Apply { apply, stringify },
        None => Evaluated::NoApply,
    })
}

impl ScriptRunner for BoaRunner {
    fn check(&mut self, source: &str) -> Result<(), ScriptError> {
        if let Some(outcome) = self.checked.get(source) {
            return outcome.clone();
        }
        let outcome = check_source(source, self.config.max_parse_stack_bytes);
        if self.checked.len() >= self.config.cache_capacity.max(1) {
            self.checked.clear();
        }
        self.checked.insert(source.to_owned(), outcome.clone());
        outcome
    }

    fn call(&mut self, source: &str, call: ScriptCall<'_>) -> Result<Option<String>, ScriptError> {
        let max_result_bytes = self.config.max_result_bytes;
        self.ensure_cached(source);
        let Self { context, jobs, cache, .. } = self;
        let compiled = match cache.get(source).map(|entry| &entry.compiled) {
            Some(Ok(compiled)) => compiled,
            Some(Err(err)) => return Err(err.clone()),
            None => return Err(ScriptError::Compile("script was evicted".to_owned())),
        };
        let old_realm = context.enter_realm(compiled.realm.clone());
        let result = run(compiled, call, jobs, context);
        context.enter_realm(old_realm);
        // Turning a thrown value into text may run its `toString`, which may queue jobs too.
        let result = result.map_err(|err| script_error(&err, jobs, context).storable());
        jobs.clear();
        let Some(text) = result? else { return Ok(None) };
        let text = checked_text(&text, max_result_bytes).map_err(|bytes| {
            ScriptError::Limit(format!(
                "result is {bytes} bytes, more than the limit of {max_result_bytes} \
                 (AETR_MAX_SCRIPT_RESULT_BYTES)"
            ))
        })?;
        if text.contains('\0') {
            return Err(ScriptError::Limit(
                "the result contains a NUL character (\\u0000), which aetr cannot store".into(),
            ));
        }
        Ok(Some(text))
    }
}

/// Calls `apply` (in its realm, already entered), settles a returned promise and turns the
/// result into a string: a string as it is, anything else as its JSON text. Its size is checked
/// by the caller.
fn run(
    compiled: &Compiled,
    call: ScriptCall<'_>,
    jobs: &CallJobs,
    context: &mut Context,
) -> JsResult<Option<JsString>> {
    let arg = match call {
        ScriptCall::Map { data } => optional_string(data),
        ScriptCall::Reduce { results } => {
            let items = results.iter().map(|item| optional_string(item.as_deref()));
            JsArray::from_iter(items, context).into()
        }
    };
    let mut value = compiled.apply.call(&JsValue::undefined(), &[arg], context)?;
    if !jobs.is_empty() {
        jobs.run(context)?;
    }
    if let Some(promise) = value.as_promise() {
        value = match promise.state() {
            PromiseState::Fulfilled(value) => value,
            PromiseState::Rejected(reason) => return Err(JsError::from_opaque(reason)),
            PromiseState::Pending => {
                return Err(JsNativeError::error()
                    .with_message("apply returned a promise that never settles")
                    .into());
            }
        };
    }
    if value.is_null_or_undefined() {
        return Ok(None);
    }
    match value.as_string() {
        Some(text) => Ok(Some(text)),
        None => Ok(compiled.stringify.call(&JsValue::undefined(), &[value], context)?.as_string()),
    }
}

/// A result as UTF-8, unless it is longer than `max_bytes`: then its length, without copying
/// it (a script may return a string that the process could not copy).
fn checked_text(text: &JsString, max_bytes: usize) -> Result<String, usize> {
    // Each UTF-16 code unit is 1 to 3 bytes of UTF-8 (a surrogate pair is 4 for 2 units).
    if text.len().saturating_mul(3) > max_bytes {
        let bytes = utf8_len(text);
        if bytes > max_bytes {
            return Err(bytes);
        }
    }
    Ok(text.to_std_string_lossy())
}

/// The length of a string's lossy UTF-8 form: an unpaired surrogate becomes U+FFFD (3 bytes).
fn utf8_len(text: &JsString) -> usize {
    match text.variant() {
        JsStrVariant::Latin1(bytes) => bytes.len() + bytes.iter().filter(|b| **b >= 0x80).count(),
        JsStrVariant::Utf16(_) => text
            .code_points()
            .map(|point| match point {
                CodePoint::Unicode(c) => c.len_utf8(),
                CodePoint::UnpairedSurrogate(_) => 3,
            })
            .sum(),
    }
}

/// A JavaScript string, or `null`.
fn optional_string(text: Option<&str>) -> JsValue {
    text.map_or_else(JsValue::null, |text| JsString::from(text).into())
}

/// Turns what a script threw into a [`ScriptError`].
fn script_error(err: &JsError, jobs: &CallJobs, context: &mut Context) -> ScriptError {
    if jobs.take_exhausted() {
        return ScriptError::Limit("promise job limit exceeded".to_owned());
    }
    if let Some(engine) = err.as_engine() {
        return match engine {
            EngineError::RuntimeLimit(RuntimeLimitError::LoopIteration) => {
                ScriptError::Limit("loop iteration limit exceeded".to_owned())
            }
            EngineError::RuntimeLimit(RuntimeLimitError::Recursion) => {
                ScriptError::Limit("recursion limit exceeded".to_owned())
            }
            EngineError::RuntimeLimit(RuntimeLimitError::StackSize) => {
                ScriptError::Limit("stack size limit exceeded".to_owned())
            }
            other => ScriptError::Thrown(other.to_string()),
        };
    }
    if let Some(native) = err.as_native() {
        let message = if native.message().is_empty() {
            native.kind().to_string()
        } else {
            native.message().to_owned()
        };
        return ScriptError::Thrown(message);
    }
    match err.as_opaque() {
        Some(value) => ScriptError::Thrown(thrown_text(value, context)),
        None => ScriptError::Thrown(err.to_string()),
    }
}

/// The text of a thrown value: an `Error`'s message, or the value as a string.
fn thrown_text(value: &JsValue, context: &mut Context) -> String {
    if let Some(object) = value.as_object().filter(|object| object.is::<ErrorData>()) {
        let message = object
            .get(js_string!("message"), context)
            .ok()
            .and_then(|message| message.as_string())
            .filter(|message| !message.is_empty());
        if let Some(message) = message {
            return message.to_std_string_lossy();
        }
    }
    match value.to_string(context) {
        Ok(text) => text.to_std_string_lossy(),
        Err(_) => value.display().to_string(),
    }
}

/// Checks that `source` parses as a script and declares a top-level `function apply`.
///
/// boa's parser recurses on nesting and needs far more native stack than a thread usually has
/// for a hostile source (a few thousand `!` or `(` are enough to overflow 2 MiB, and a stack
/// overflow aborts the process). So the parse runs on a thread of its own, whose stack is sized
/// from an upper bound of what the source can need (at most `max_stack`), before any parse on
/// the caller's thread.
fn check_source(source: &str, max_stack: usize) -> Result<(), ScriptError> {
    check_nesting(source)?;
    let stack = parse_stack_bytes(source).ok_or_else(|| {
        ScriptError::Compile("script is too long or nests too deeply to compile".to_owned())
    })?;
    let stack = stack.min(max_stack.max(MIN_PARSE_STACK));
    std::thread::scope(|scope| {
        let parse = std::thread::Builder::new()
            .name("aetr-script-check".to_owned())
            .stack_size(stack)
            .spawn_scoped(scope, || parse_and_find_apply(source))
            .map_err(|err| ScriptError::Compile(format!("cannot check the script: {err}")))?;
        parse.join().unwrap_or_else(|_| {
            Err(ScriptError::Compile("the script parser failed on this script".to_owned()))
        })
    })
}

/// The native stack that parsing `source` can need at most, or `None` if that is more than
/// [`MAX_PARSE_STACK`].
///
/// Measured on boa 0.22 (unoptimised, the worst case), one level of nesting costs up to about
/// 85 KiB for a bracket and 10 KiB for a one-byte prefix operator (`!!!!x`); this bound allows
/// 128 KiB per opening bracket and 16 KiB per other byte.
fn parse_stack_bytes(source: &str) -> Option<usize> {
    let brackets = source.bytes().filter(|byte| matches!(byte, b'(' | b'[' | b'{')).count();
    let others = source.len() - brackets;
    let stack = (brackets as u64)
        .checked_mul(128 * 1024)?
        .checked_add((others as u64).checked_mul(16 * 1024)?)?
        .checked_add(32 * 1024 * 1024)?;
    if stack > MAX_PARSE_STACK {
        return None;
    }
    usize::try_from(stack).ok()
}

/// The largest stack to reserve for parsing one script. Only the pages a parse touches are
/// used; the rest is address space.
const MAX_PARSE_STACK: u64 = 4 << 30;

/// The smallest stack that [`BoaRunnerConfig::max_parse_stack_bytes`] can cap a parse at.
const MIN_PARSE_STACK: usize = 2 * 1024 * 1024;

/// Parses `source` and looks for a top-level `function apply` (or `async function apply`).
fn parse_and_find_apply(source: &str) -> Result<(), ScriptError> {
    let mut interner = Interner::default();
    let script = Parser::new(Source::from_bytes(source))
        .parse_script(&Scope::new_global(), &mut interner)
        .map_err(|err| ScriptError::Compile(err.to_string()))?;
    let Some(apply) = interner.get("apply") else {
        return Err(ScriptError::Compile(MISSING_APPLY.to_owned()));
    };
    let declares_apply = script.statements().statements().iter().any(|item| match item {
        StatementListItem::Declaration(declaration) => match declaration.as_ref() {
            Declaration::FunctionDeclaration(function) => function.name().sym() == apply,
            Declaration::AsyncFunctionDeclaration(function) => function.name().sym() == apply,
            _ => false,
        },
        StatementListItem::Statement(_) => false,
    });
    if declares_apply {
        Ok(())
    } else {
        Err(ScriptError::Compile(MISSING_APPLY.to_owned()))
    }
}

/// Refuses sources whose brackets nest deeper than [`MAX_NESTING`].
///
/// This protects the runner's own thread, which parses and compiles the script again (boa can
/// only compile on the thread of its context). It counts brackets everywhere, strings and
/// comments included, so it is a heuristic: brackets in strings can make it refuse a script
/// that nests less than it counts, or accept one that nests more. The check on its own thread
/// (see [`check_source`]) does not rely on it.
fn check_nesting(source: &str) -> Result<(), ScriptError> {
    let mut depth = 0usize;
    for byte in source.bytes() {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(ScriptError::Compile(format!(
                        "script nests brackets deeper than {MAX_NESTING} levels"
                    )));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The job queue of a call.
///
/// Promise jobs and generic jobs run in order, at most `loop_iteration_limit` of them per run.
/// Async jobs (dynamic `import()`) are polled once, and dropped if they do not finish then:
/// with module loading disabled they finish at once. Timer and finalization jobs are dropped.
#[derive(Default)]
struct CallJobs {
    promise_jobs: RefCell<VecDeque<PromiseJob>>,
    generic_jobs: RefCell<VecDeque<GenericJob>>,
    async_jobs: RefCell<VecDeque<NativeAsyncJob>>,
    /// Set when a run stopped because it ran out of budget.
    exhausted: Cell<bool>,
}

impl CallJobs {
    fn is_empty(&self) -> bool {
        self.promise_jobs.borrow().is_empty()
            && self.generic_jobs.borrow().is_empty()
            && self.async_jobs.borrow().is_empty()
    }

    fn clear(&self) {
        self.promise_jobs.borrow_mut().clear();
        self.generic_jobs.borrow_mut().clear();
        self.async_jobs.borrow_mut().clear();
    }

    /// Whether the last run ran out of budget; resets the flag.
    fn take_exhausted(&self) -> bool {
        self.exhausted.replace(false)
    }

    /// Runs jobs until none is left, or the budget runs out.
    fn run(&self, context: &mut Context) -> JsResult<()> {
        let mut budget = context.runtime_limits().loop_iteration_limit();
        loop {
            let async_job = self.async_jobs.borrow_mut().pop_front();
            if let Some(job) = async_job {
                let cell = RefCell::new(&mut *context);
                let mut future = job.call(&cell);
                let mut waker_context = std::task::Context::from_waker(Waker::noop());
                if let Poll::Ready(Err(err)) = Pin::new(&mut future).poll(&mut waker_context) {
                    return Err(err);
                }
                continue;
            }
            let promise_job = self.promise_jobs.borrow_mut().pop_front();
            let generic_job = match promise_job {
                Some(_) => None,
                None => self.generic_jobs.borrow_mut().pop_front(),
            };
            if promise_job.is_none() && generic_job.is_none() {
                return Ok(());
            }
            if budget == 0 {
                self.exhausted.set(true);
                return Err(JsNativeError::range()
                    .with_message("promise job limit exceeded")
                    .into());
            }
            budget -= 1;
            if let Some(job) = promise_job {
                job.call(context)?;
            } else if let Some(job) = generic_job {
                job.call(context)?;
            }
        }
    }
}

impl JobExecutor for CallJobs {
    fn enqueue_job(self: Rc<Self>, job: Job, _context: &mut Context) {
        match job {
            Job::PromiseJob(job) => self.promise_jobs.borrow_mut().push_back(job),
            Job::GenericJob(job) => self.generic_jobs.borrow_mut().push_back(job),
            Job::AsyncJob(job) => self.async_jobs.borrow_mut().push_back(job),
            // Timers and finalization registries are not part of the script contract.
            _ => {}
        }
    }

    fn run_jobs(self: Rc<Self>, context: &mut Context) -> JsResult<()> {
        let result = self.run(context);
        self.clear();
        result
    }
}
