//! The boa script runner, through the public `ScriptRunner` API.

use aetr_engine::script::{BoaRunner, BoaRunnerConfig, ScriptCall, ScriptError, ScriptRunner};

fn map(
    runner: &mut BoaRunner,
    source: &str,
    data: Option<&str>,
) -> Result<Option<String>, ScriptError> {
    runner.call(source, ScriptCall::Map { data })
}

fn reduce(
    runner: &mut BoaRunner,
    source: &str,
    results: &[Option<String>],
) -> Result<Option<String>, ScriptError> {
    runner.call(source, ScriptCall::Reduce { results })
}

fn thrown(result: Result<Option<String>, ScriptError>) -> String {
    match result {
        Err(ScriptError::Thrown(message)) => message,
        other => panic!("expected a thrown error, got {other:?}"),
    }
}

fn limit(result: Result<Option<String>, ScriptError>) -> String {
    match result {
        Err(ScriptError::Limit(message)) => message,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

fn compile_error(result: Result<(), ScriptError>) -> String {
    match result {
        Err(ScriptError::Compile(message)) => message,
        other => panic!("expected a compile error, got {other:?}"),
    }
}

const IDENTITY: &str = "function apply(data) { return data; }";

#[test]
fn a_string_passes_through() {
    let mut runner = BoaRunner::default();
    assert_eq!(map(&mut runner, IDENTITY, Some("hello")).unwrap().as_deref(), Some("hello"));
    let text = "{\"not\": \"parsed\"} ünïcødé 🦀";
    assert_eq!(map(&mut runner, IDENTITY, Some(text)).unwrap().as_deref(), Some(text));
    assert_eq!(map(&mut runner, IDENTITY, Some("")).unwrap().as_deref(), Some(""));
}

#[test]
fn no_data_is_null_and_null_is_no_result() {
    let mut runner = BoaRunner::default();
    let source = "function apply(data) { return data === null ? 'was null' : typeof data; }";
    assert_eq!(map(&mut runner, source, None).unwrap().as_deref(), Some("was null"));
    assert_eq!(map(&mut runner, source, Some("x")).unwrap().as_deref(), Some("string"));
    assert_eq!(map(&mut runner, IDENTITY, None).unwrap(), None);
    assert_eq!(map(&mut runner, "function apply() { return null; }", Some("x")).unwrap(), None);
}

#[test]
fn undefined_is_no_result() {
    let mut runner = BoaRunner::default();
    assert_eq!(map(&mut runner, "function apply() {}", Some("x")).unwrap(), None);
    assert_eq!(map(&mut runner, "function apply() { return undefined; }", None).unwrap(), None);
}

#[test]
fn other_values_become_json_text() {
    let mut runner = BoaRunner::default();
    let cases = [
        ("return 42;", "42"),
        ("return 1.5;", "1.5"),
        ("return true;", "true"),
        ("return false;", "false"),
        ("return {a: 1, b: [1, 'x', null], c: undefined};", r#"{"a":1,"b":[1,"x",null]}"#),
        ("return [1, 2, 3];", "[1,2,3]"),
        ("return JSON.parse(data);", r#"{"k":["v"]}"#),
        ("return {toJSON() { return 'custom'; }};", r#""custom""#),
        ("return NaN;", "null"),
        ("return new String('boxed');", r#""boxed""#),
    ];
    for (body, expected) in cases {
        let source = format!("function apply(data) {{ {body} }}");
        let result = map(&mut runner, &source, Some(r#"{"k":["v"]}"#)).unwrap();
        assert_eq!(result.as_deref(), Some(expected), "{body}");
    }
}

#[test]
fn values_json_cannot_express_are_no_result() {
    let mut runner = BoaRunner::default();
    assert_eq!(
        map(&mut runner, "function apply() { return function () {}; }", None).unwrap(),
        None
    );
    assert_eq!(map(&mut runner, "function apply() { return Symbol('s'); }", None).unwrap(), None);
}

#[test]
fn values_json_refuses_are_thrown() {
    let mut runner = BoaRunner::default();
    let message = thrown(map(&mut runner, "function apply() { return 10n; }", None));
    assert!(message.to_lowercase().contains("bigint"), "{message}");
    let cycle = "function apply() { const o = {}; o.self = o; return o; }";
    assert!(!thrown(map(&mut runner, cycle, None)).is_empty());
}

#[test]
fn a_reducer_gets_strings_and_nulls_in_child_order() {
    let mut runner = BoaRunner::default();
    let source = "function apply(results) {
        if (!Array.isArray(results) || !(results instanceof Array)) throw new Error('not an array');
        return results.map(r => r === null ? '<null>' : typeof r + ':' + r).join(',');
    }";
    let results = [Some("a".to_owned()), None, Some("{\"x\":1}".to_owned()), None];
    assert_eq!(
        reduce(&mut runner, source, &results).unwrap().as_deref(),
        Some("string:a,<null>,string:{\"x\":1},<null>")
    );
    assert_eq!(reduce(&mut runner, source, &[]).unwrap().as_deref(), Some(""));
    let whole = "function apply(results) { return results; }";
    assert_eq!(
        reduce(&mut runner, whole, &results).unwrap().as_deref(),
        Some(r#"["a",null,"{\"x\":1}",null]"#)
    );
}

#[test]
fn a_thrown_error_gives_its_message() {
    let mut runner = BoaRunner::default();
    assert_eq!(
        thrown(map(&mut runner, "function apply() { throw new Error('boom'); }", None)),
        "boom"
    );
    assert_eq!(
        thrown(map(&mut runner, "function apply() { throw new RangeError('out'); }", None)),
        "out"
    );
    let message = thrown(map(&mut runner, "function apply(data) { return data.x; }", None));
    assert!(message.contains("null") || message.contains("undefined"), "{message}");
    let message = thrown(map(&mut runner, "function apply() { return missing; }", None));
    assert!(message.contains("missing"), "{message}");
    assert_eq!(
        thrown(map(&mut runner, "function apply() { throw new TypeError(); }", None)),
        "TypeError"
    );
}

#[test]
fn a_thrown_value_gives_its_text() {
    let mut runner = BoaRunner::default();
    assert_eq!(thrown(map(&mut runner, "function apply() { throw 'x'; }", None)), "x");
    assert_eq!(thrown(map(&mut runner, "function apply() { throw 42; }", None)), "42");
    assert_eq!(thrown(map(&mut runner, "function apply() { throw null; }", None)), "null");
    assert_eq!(
        thrown(map(
            &mut runner,
            "function apply() { throw {toString() { return 'custom'; }}; }",
            None
        )),
        "custom"
    );
    assert!(!thrown(map(&mut runner, "function apply() { throw Symbol('s'); }", None)).is_empty());
}

#[test]
fn check_accepts_a_script_with_apply() {
    let mut runner = BoaRunner::default();
    runner.check(IDENTITY).unwrap();
    runner.check("'use strict';\nconst k = 2;\nfunction helper(x) { return x * k; }\nfunction apply(d) { return helper(d); }").unwrap();
    runner.check("async function apply(d) { return d; }").unwrap();
}

#[test]
fn check_refuses_a_syntax_error_with_its_position() {
    let mut runner = BoaRunner::default();
    let message = compile_error(runner.check("function apply(data) {\n  return data +;\n}"));
    assert!(message.contains("line 2"), "{message}");
    let message = compile_error(runner.check("function apply(data) { return data; "));
    assert!(!message.is_empty());
    // A call of a source that does not parse is a compile error too.
    assert!(matches!(map(&mut runner, "function apply( {", None), Err(ScriptError::Compile(_))));
}

#[test]
fn check_refuses_a_script_without_apply() {
    let mut runner = BoaRunner::default();
    for source in [
        "",
        "function notApply(data) { return data; }",
        "var apply = function (data) { return data; };",
        "const apply = (data) => data;",
        "function outer() { function apply() {} }",
        "{ function apply() {} }",
        "function* apply() {}",
        "apply",
    ] {
        let message = compile_error(runner.check(source));
        assert_eq!(message, "script must define a function apply(...)", "{source}");
        let message = match map(&mut runner, source, None) {
            Err(ScriptError::Compile(message)) => message,
            other => panic!("{source}: expected a compile error, got {other:?}"),
        };
        assert_eq!(message, "script must define a function apply(...)", "{source}");
    }
}

#[test]
fn check_does_not_run_the_script() {
    let mut runner = BoaRunner::default();
    let started = std::time::Instant::now();
    runner.check("while (true) {}\nfunction apply(data) { return data; }").unwrap();
    runner.check("throw new Error('top level');\nfunction apply(data) { return data; }").unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn check_refuses_deep_nesting_without_overflowing_the_stack() {
    let mut runner = BoaRunner::default();
    let deep =
        format!("function apply() {{ return {}1{}; }}", "(".repeat(100_000), ")".repeat(100_000));
    let message = compile_error(runner.check(&deep));
    assert!(message.contains("nests brackets deeper"), "{message}");
    assert!(matches!(map(&mut runner, &deep, None), Err(ScriptError::Compile(_))));
    // Brackets in strings fool the bracket count (here it never goes above 1), but not the
    // check, which parses on a thread with a stack sized for the source.
    let hidden =
        format!("function apply() {{ return {}1{}; }}", "(')', ".repeat(2_000), ")".repeat(2_000));
    runner.check(&hidden).unwrap();
    // Deep nesting without brackets.
    let unary = format!("function apply() {{ return {}1; }}", "!".repeat(60_000));
    runner.check(&unary).unwrap();
    let ternary =
        format!("function apply() {{ return {}1{}; }}", "1?".repeat(10_000), ":1".repeat(10_000));
    runner.check(&ternary).unwrap();
    // Ordinary nesting is fine.
    let fine = format!("function apply() {{ return {}1{}; }}", "(".repeat(10), ")".repeat(10));
    runner.check(&fine).unwrap();
    assert_eq!(map(&mut runner, &fine, None).unwrap().as_deref(), Some("1"));
}

#[test]
fn a_top_level_error_fails_the_call() {
    let mut runner = BoaRunner::default();
    let source = "throw new Error('top level');\nfunction apply(data) { return data; }";
    assert_eq!(thrown(map(&mut runner, source, None)), "top level");
    // A script that replaces its apply with something else does not define one.
    let replaced = "function apply(data) { return data; }\napply = 5;";
    assert!(matches!(map(&mut runner, replaced, None), Err(ScriptError::Compile(_))));
}

#[test]
fn an_infinite_loop_hits_the_loop_limit() {
    let mut runner = BoaRunner::default();
    let message = limit(map(&mut runner, "function apply() { while (true) {} }", None));
    assert_eq!(message, "loop iteration limit exceeded");
    let message =
        limit(map(&mut runner, "function apply() { for (;;) { try {} catch (e) {} } }", None));
    assert_eq!(message, "loop iteration limit exceeded");
    // A script cannot catch a limit.
    let caught = "function apply() { try { while (true) {} } catch (e) { return 'caught'; } }";
    assert_eq!(limit(map(&mut runner, caught, None)), "loop iteration limit exceeded");
    // At the top level too.
    let top = "while (true) {}\nfunction apply() {}";
    assert_eq!(limit(map(&mut runner, top, None)), "loop iteration limit exceeded");
}

#[test]
fn deep_recursion_hits_the_recursion_limit() {
    let mut runner = BoaRunner::default();
    let source = "function f(n) { return n === 0 ? 0 : 1 + f(n - 1); }
        function apply() { return f(1e9); }";
    assert_eq!(limit(map(&mut runner, source, None)), "recursion limit exceeded");
    // Recursion through builtins (host calls back into JavaScript).
    let through_map = "function f(n) { return [n].map(x => f(x + 1))[0]; }
        function apply() { return f(0); }";
    assert_eq!(limit(map(&mut runner, through_map, None)), "recursion limit exceeded");
    let through_getter = "const o = { get x() { return this.x; } };
        function apply() { return o.x; }";
    assert_eq!(limit(map(&mut runner, through_getter, None)), "recursion limit exceeded");
    let through_sort = "function f() { return [2, 1].sort(() => f()); }
        function apply() { return f(); }";
    assert_eq!(limit(map(&mut runner, through_sort, None)), "recursion limit exceeded");
}

#[test]
fn a_small_stack_limit_is_reported() {
    let mut runner =
        BoaRunner::new(BoaRunnerConfig { stack_size_limit: 64, ..BoaRunnerConfig::default() });
    let source =
        "function f(a, b, c, d, e, n) { return n === 0 ? 0 : 1 + f(a, b, c, d, e, n - 1); }
        function apply() { return f(1, 2, 3, 4, 5, 1000); }";
    assert_eq!(limit(map(&mut runner, source, None)), "stack size limit exceeded");
}

#[test]
fn the_runner_works_after_a_limit() {
    let mut runner = BoaRunner::default();
    let looping = "function apply() { while (true) {} }";
    let recursing = "function f() { return f(); } function apply() { return f(); }";
    for _ in 0..3 {
        limit(map(&mut runner, looping, None));
        assert_eq!(map(&mut runner, IDENTITY, Some("ok")).unwrap().as_deref(), Some("ok"));
        limit(map(&mut runner, recursing, None));
        assert_eq!(
            map(&mut runner, IDENTITY, Some("still ok")).unwrap().as_deref(),
            Some("still ok")
        );
    }
    // The loop limit counts per call, not per runner.
    let counting = "function apply() { let i = 0; while (i < 1000) i++; return i; }";
    for _ in 0..10 {
        assert_eq!(map(&mut runner, counting, None).unwrap().as_deref(), Some("1000"));
    }
}

#[test]
fn limits_come_from_the_config() {
    let mut runner = BoaRunner::new(BoaRunnerConfig {
        loop_iteration_limit: 100,
        recursion_limit: 20,
        ..BoaRunnerConfig::default()
    });
    let counting = "function apply(n) { let i = 0; while (i < Number(n)) i++; return i; }";
    assert_eq!(map(&mut runner, counting, Some("50")).unwrap().as_deref(), Some("50"));
    assert_eq!(limit(map(&mut runner, counting, Some("500"))), "loop iteration limit exceeded");
    let recursing = "function f(n) { return n === 0 ? 0 : 1 + f(n - 1); } function apply(n) { return f(Number(n)); }";
    assert_eq!(map(&mut runner, recursing, Some("10")).unwrap().as_deref(), Some("10"));
    assert_eq!(limit(map(&mut runner, recursing, Some("30"))), "recursion limit exceeded");
}

#[test]
fn two_scripts_with_apply_do_not_collide() {
    let mut runner = BoaRunner::default();
    let upper =
        "var tag = 'upper'; function apply(data) { return tag + ':' + data.toUpperCase(); }";
    let lower =
        "var tag = 'lower'; function apply(data) { return tag + ':' + data.toLowerCase(); }";
    for _ in 0..2 {
        assert_eq!(map(&mut runner, upper, Some("Ab")).unwrap().as_deref(), Some("upper:AB"));
        assert_eq!(map(&mut runner, lower, Some("Ab")).unwrap().as_deref(), Some("lower:ab"));
    }
}

#[test]
fn a_script_changing_its_builtins_does_not_change_another_script() {
    let mut runner = BoaRunner::default();
    let vandal = "Array.prototype.join = function () { return 'vandalised'; };
        globalThis.shared = 'leaked';
        JSON.stringify = function () { return 'hijacked'; };
        function apply() { return [1, 2].join('-'); }";
    let victim = "function apply() { return [1, 2].join('-') + ' ' + typeof shared; }";
    assert_eq!(map(&mut runner, vandal, None).unwrap().as_deref(), Some("vandalised"));
    assert_eq!(map(&mut runner, victim, None).unwrap().as_deref(), Some("1-2 undefined"));
    // The runner converts results with the realm's original JSON.stringify.
    let own =
        "JSON.stringify = function () { return 'hijacked'; }; function apply() { return [1]; }";
    assert_eq!(map(&mut runner, own, None).unwrap().as_deref(), Some("[1]"));
}

#[test]
fn use_strict_applies_to_the_script() {
    let mut runner = BoaRunner::default();
    let strict = "'use strict';\nfunction apply() { undeclared = 1; return 'no error'; }";
    let message = thrown(map(&mut runner, strict, None));
    assert!(message.contains("undeclared"), "{message}");
    let sloppy = "function apply() { undeclared = 1; return 'no error'; }";
    assert_eq!(map(&mut runner, sloppy, None).unwrap().as_deref(), Some("no error"));
    let this_is = "'use strict';\nfunction apply() { return typeof this; }";
    assert_eq!(map(&mut runner, this_is, None).unwrap().as_deref(), Some("undefined"));
}

#[test]
fn a_script_is_compiled_once_and_reused() {
    let mut runner = BoaRunner::default();
    let counter = "var n = 0; function apply() { return String(++n); }";
    assert_eq!(map(&mut runner, counter, None).unwrap().as_deref(), Some("1"));
    assert_eq!(map(&mut runner, counter, None).unwrap().as_deref(), Some("2"));
    assert_eq!(map(&mut runner, counter, Some("x")).unwrap().as_deref(), Some("3"));
    assert_eq!(runner.cached_scripts(), 1);
    // A different source text is a different script, with its own state.
    let same_but_spaced = "var n = 0;  function apply() { return String(++n); }";
    assert_eq!(map(&mut runner, same_but_spaced, None).unwrap().as_deref(), Some("1"));
    assert_eq!(map(&mut runner, counter, None).unwrap().as_deref(), Some("4"));
}

#[test]
fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
    let mut runner =
        BoaRunner::new(BoaRunnerConfig { cache_capacity: 2, ..BoaRunnerConfig::default() });
    let counter =
        |name: &str| format!("var n = 0; function apply() {{ return '{name}' + (++n); }}");
    let (a, b, c) = (counter("a"), counter("b"), counter("c"));
    assert_eq!(map(&mut runner, &a, None).unwrap().as_deref(), Some("a1"));
    assert_eq!(map(&mut runner, &b, None).unwrap().as_deref(), Some("b1"));
    assert_eq!(map(&mut runner, &a, None).unwrap().as_deref(), Some("a2"));
    // c evicts b, the least recently used.
    assert_eq!(map(&mut runner, &c, None).unwrap().as_deref(), Some("c1"));
    assert_eq!(runner.cached_scripts(), 2);
    assert_eq!(map(&mut runner, &a, None).unwrap().as_deref(), Some("a3"));
    // b starts again from a fresh realm.
    assert_eq!(map(&mut runner, &b, None).unwrap().as_deref(), Some("b1"));
    assert_eq!(runner.cached_scripts(), 2);
}

#[test]
fn a_result_over_the_size_limit_is_refused() {
    let mut runner =
        BoaRunner::new(BoaRunnerConfig { max_result_bytes: 10, ..BoaRunnerConfig::default() });
    assert_eq!(
        map(&mut runner, IDENTITY, Some("0123456789")).unwrap().as_deref(),
        Some("0123456789")
    );
    assert_eq!(
        limit(map(&mut runner, IDENTITY, Some("0123456789a"))),
        "result is 11 bytes, more than the limit of 10 (AETR_MAX_SCRIPT_RESULT_BYTES)"
    );
    // Bytes of UTF-8, not characters.
    assert_eq!(
        limit(map(&mut runner, IDENTITY, Some("ééééééé"))),
        "result is 14 bytes, more than the limit of 10 (AETR_MAX_SCRIPT_RESULT_BYTES)"
    );
    // JSON text counts too.
    let array = "function apply() { return [1, 2, 3, 4, 5, 6]; }";
    assert_eq!(
        limit(map(&mut runner, array, None)),
        "result is 13 bytes, more than the limit of 10 (AETR_MAX_SCRIPT_RESULT_BYTES)"
    );
}

#[test]
fn a_result_is_measured_in_utf8_before_it_is_copied() {
    let mut runner =
        BoaRunner::new(BoaRunnerConfig { max_result_bytes: 10, ..BoaRunnerConfig::default() });
    // Latin-1 (é is 2 bytes), UTF-16 (€ is 3 bytes, an emoji 4) and an unpaired surrogate,
    // which becomes U+FFFD (3 bytes): each just over the limit, and just under.
    for (over, under) in [
        ("'é'.repeat(5) + 'x'", "'é'.repeat(5)"),
        ("'€'.repeat(3) + 'xx'", "'€'.repeat(3) + 'x'"),
        ("'\\u{1F600}'.repeat(2) + 'xxx'", "'\\u{1F600}'.repeat(2) + 'xx'"),
        ("'\\uD800'.repeat(3) + 'xx'", "'\\uD800'.repeat(3) + 'x'"),
    ] {
        let source = format!("function apply() {{ return {over}; }}");
        assert_eq!(
            limit(map(&mut runner, &source, None)),
            "result is 11 bytes, more than the limit of 10 (AETR_MAX_SCRIPT_RESULT_BYTES)",
            "{over}"
        );
        let source = format!("function apply() {{ return {under}; }}");
        assert_eq!(map(&mut runner, &source, None).unwrap().map(|r| r.len()), Some(10), "{under}");
    }
    // A result far over the limit is refused by its length alone.
    let huge = "function apply() { return 'x'.repeat(1000000).repeat(100); }";
    assert_eq!(
        limit(map(&mut runner, huge, None)),
        "result is 100000000 bytes, more than the limit of 10 (AETR_MAX_SCRIPT_RESULT_BYTES)"
    );
}

#[test]
fn a_capped_parse_stack_still_parses_ordinary_scripts() {
    let config = BoaRunnerConfig { max_parse_stack_bytes: 0, ..BoaRunnerConfig::default() };
    let mut runner = BoaRunner::new(config);
    let long = format!("function apply(d) {{ return [{}].length; }}", "1, ".repeat(20_000));
    runner.check(&long).unwrap();
    assert_eq!(map(&mut runner, &long, None).unwrap().as_deref(), Some("20000"));
}

#[test]
fn the_default_result_limit_is_16_mib() {
    let mut runner = BoaRunner::default();
    assert_eq!(runner.config().max_result_bytes, 16 * 1024 * 1024);
    let big = "x".repeat(16 * 1024 * 1024 + 1);
    assert_eq!(
        limit(map(&mut runner, IDENTITY, Some(&big))),
        format!(
            "result is {} bytes, more than the limit of {} (AETR_MAX_SCRIPT_RESULT_BYTES)",
            16 * 1024 * 1024 + 1,
            16 * 1024 * 1024
        )
    );
    assert_eq!(
        map(&mut runner, IDENTITY, Some(&big[1..])).unwrap().map(|r| r.len()),
        Some(big.len() - 1)
    );
}

#[test]
fn dynamic_import_does_not_read_files() {
    let mut runner = BoaRunner::default();
    for specifier in ["/etc/passwd", "./x.js", "../Cargo.toml", "Cargo.toml"] {
        let source = format!("function apply() {{ return import({specifier:?}); }}");
        let message = thrown(map(&mut runner, &source, None));
        assert!(message.contains("disabled"), "{specifier}: {message}");
        // Nor when the script catches the rejection and returns what it got.
        let caught = format!(
            "async function apply() {{ try {{ return JSON.stringify(await import({specifier:?})); }} \
             catch (e) {{ return 'refused: ' + e.message; }} }}"
        );
        let result = map(&mut runner, &caught, None).unwrap().unwrap();
        assert!(result.starts_with("refused: "), "{specifier}: {result}");
    }
    // A static import is not even a script.
    compile_error(runner.check("import x from '/etc/passwd';\nfunction apply() { return x; }"));
}

#[test]
fn a_returned_promise_is_settled() {
    let mut runner = BoaRunner::default();
    let resolved = "function apply(data) { return Promise.resolve(data + '!'); }";
    assert_eq!(map(&mut runner, resolved, Some("a")).unwrap().as_deref(), Some("a!"));
    let chained =
        "async function apply(data) { const x = await Promise.resolve(1); return {x, data}; }";
    assert_eq!(
        map(&mut runner, chained, Some("d")).unwrap().as_deref(),
        Some(r#"{"x":1,"data":"d"}"#)
    );
    let rejected = "async function apply() { throw new Error('async boom'); }";
    assert_eq!(thrown(map(&mut runner, rejected, None)), "async boom");
    let null = "async function apply() { return null; }";
    assert_eq!(map(&mut runner, null, None).unwrap(), None);
    let never = "function apply() { return new Promise(() => {}); }";
    assert_eq!(
        thrown(map(&mut runner, never, None)),
        "apply returned a promise that never settles"
    );
}

#[test]
fn an_endless_chain_of_promise_jobs_hits_a_limit() {
    let mut runner = BoaRunner::new(BoaRunnerConfig {
        loop_iteration_limit: 10_000,
        ..BoaRunnerConfig::default()
    });
    let endless = "function spin() { return Promise.resolve().then(spin); }
        function apply() { spin(); return 'done'; }";
    assert_eq!(limit(map(&mut runner, endless, None)), "promise job limit exceeded");
    assert_eq!(map(&mut runner, IDENTITY, Some("ok")).unwrap().as_deref(), Some("ok"));
}

#[test]
fn promise_jobs_run_before_the_call_returns() {
    let mut runner = BoaRunner::default();
    let source = "var log = [];
        function apply(data) {
            if (data === 'read') return log.join(',');
            Promise.resolve(data).then(x => log.push(x));
            return null;
        }";
    assert_eq!(map(&mut runner, source, Some("a")).unwrap(), None);
    assert_eq!(map(&mut runner, source, Some("b")).unwrap(), None);
    assert_eq!(map(&mut runner, source, Some("read")).unwrap().as_deref(), Some("a,b"));
}

/// Prints the cost of a cached mapper call. Run with
/// `cargo test --release -p aetr-engine --test script_runner -- --ignored --nocapture bench`.
#[test]
#[ignore = "a benchmark; run in release mode"]
fn bench_cached_call() {
    use std::time::Instant;

    let mut runner = BoaRunner::default();
    let sources = [
        ("identity", IDENTITY.to_owned()),
        (
            "json",
            "function apply(data) { const o = JSON.parse(data); o.n += 1; return o; }".to_owned(),
        ),
    ];
    for (name, source) in &sources {
        let data = Some(r#"{"n":1,"name":"x"}"#);
        map(&mut runner, source, data).unwrap();
        let calls = 200_000;
        let started = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(map(&mut runner, source, data).unwrap());
        }
        let per_call = started.elapsed().as_nanos() / calls;
        println!("cached mapper call ({name}): {per_call} ns/call");
    }
    let results: Vec<Option<String>> = (0..10).map(|i| Some(i.to_string())).collect();
    let source = "function apply(results) { return results.join(','); }";
    reduce(&mut runner, source, &results).unwrap();
    let calls = 200_000;
    let started = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(reduce(&mut runner, source, &results).unwrap());
    }
    println!("cached reducer call (10 results): {} ns/call", started.elapsed().as_nanos() / calls);
    let compiles = 200;
    let started = Instant::now();
    for i in 0..compiles {
        let source = format!("function apply(data) {{ return data + {i}; }}");
        std::hint::black_box(map(&mut runner, &source, Some("x")).unwrap());
    }
    println!(
        "first call of a new script (parse, realm, compile): {} us",
        started.elapsed().as_micros() / compiles
    );
    let checks = 200;
    let started = Instant::now();
    for i in 0..checks {
        let source = format!("function apply(data) {{ return data + {i}; }} // check");
        runner.check(&source).unwrap();
    }
    println!(
        "check of a new script (parse on its own thread): {} us",
        started.elapsed().as_micros() / checks
    );
    let rss = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()).unwrap_or(0)
            * 4096
    };
    let mut full = BoaRunner::default();
    let before = rss();
    let capacity = full.config().cache_capacity;
    for i in 0..capacity {
        let source = format!("function apply(data) {{ return data + {i}; }} // memory");
        map(&mut full, &source, Some("x")).unwrap();
    }
    println!(
        "memory of a full cache ({capacity} scripts): about {} KiB per script",
        rss().saturating_sub(before) / 1024 / capacity as u64
    );
    let started = Instant::now();
    let runners = 100;
    for _ in 0..runners {
        std::hint::black_box(BoaRunner::default());
    }
    println!("new runner: {} us", started.elapsed().as_micros() / runners);
}

#[test]
fn a_nul_character_never_leaves_a_script_to_be_stored() {
    let mut runner = BoaRunner::default();
    let returns_nul = "function apply(d) { return 'a\\u0000b'; }";
    assert_eq!(
        limit(map(&mut runner, returns_nul, Some("x"))),
        "the result contains a NUL character (\\u0000), which aetr cannot store"
    );
    let as_json = "function apply(d) { return {s: 'a\\u0000b'}; }";
    assert_eq!(
        map(&mut runner, as_json, Some("x")).unwrap().as_deref(),
        Some(r#"{"s":"a\u0000b"}"#)
    );
    let throws_nul = "function apply(d) { throw 'bad\\u0000'; }";
    let thrown = map(&mut runner, throws_nul, Some("x")).unwrap_err().to_string();
    assert!(!thrown.contains('\0') && thrown.contains("bad\u{FFFD}"), "{thrown:?}");
}
