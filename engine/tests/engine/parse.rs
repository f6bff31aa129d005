//! Parsing and validation: every error names its field and its status.

use aetr_engine::parse::{run_input, AnyPool, AnyUrl, Parser, Reference, UrlPolicy};
use aetr_engine::script::BoaRunner;
use aetr_engine::step::{Action, CallbackTimeout, Mode, OnTimeout, RetryPolicy};
use aetr_engine::{Limits, Mapper, Reducer, Severity, StepBody};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

fn parse_fat(v: &Value) -> Result<aetr_engine::parse::FatTree, Vec<(String, u16)>> {
    parse_fat_with(v, &Limits::default())
}

fn parse_fat_with(
    v: &Value,
    limits: &Limits,
) -> Result<aetr_engine::parse::FatTree, Vec<(String, u16)>> {
    let mut scripts = BoaRunner::default();
    let mut ids = counter_ids();
    Parser { limits, scripts: &mut scripts, new_id: &mut ids, urls: &AnyUrl, pools: &AnyPool }
        .fat_tree(v)
        .map_err(|e| e.errors().iter().map(|e| (e.to_string(), e.severity.http_status())).collect())
}

fn one_error(v: &Value) -> (String, u16) {
    let errs = parse_fat(v).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs[0].clone()
}

#[test]
fn a_fat_tree_gets_generated_ids_and_keeps_everything() {
    let tree = json!({
        "name": "root", "stepType": "Parallel",
        "reducer": {"type": "js", "js": "function apply(rs) { return rs.length; }"},
        "children": [
            {"name": "a", "stepType": "Action", "mapper": {"type": "no-op"},
             "action": {"type": "api", "url": "http://svc.test/a?x=1", "headers": {"X-B": "2", "X-A": "1"},
                        "retry": {"maxAttempts": 5, "backoffMs": 10, "maxBackoffMs": 100},
                        "timeoutSeconds": 3, "callbackTimeoutSeconds": null, "onTimeout": "retry", "mode": "sync"}},
            {"id": "00000000-0000-0000-0000-0000000000aa", "mapper": {"type": "js", "js": "function apply(d) { return d; }"}},
        ]
    });
    let fat = parse_fat(&tree).unwrap();
    assert_eq!(fat.root, Uuid::from_u128(1));
    assert_eq!(fat.steps.len(), 2);
    let root = &fat.steps[0];
    assert_eq!(
        root.body,
        StepBody::Parallel {
            reducer: Reducer::Js { js: "function apply(rs) { return rs.length; }".into() }
        }
    );
    assert_eq!(root.children[0].mapper, Some(Mapper::NoOp));
    assert_eq!(root.children[1].id, Uuid::from_u128(0xaa));
    assert!(matches!(root.children[1].mapper, Some(Mapper::Js { .. })));
    let StepBody::Action { action: Action::Api(a) } = &fat.steps[1].body else { panic!() };
    assert_eq!(a.url, "http://svc.test/a?x=1");
    assert_eq!(
        a.headers,
        vec![("X-B".to_owned(), "2".to_owned()), ("X-A".to_owned(), "1".to_owned())]
    );
    assert_eq!(a.retry, Some(RetryPolicy { max_attempts: 5, backoff_ms: 10, max_backoff_ms: 100 }));
    assert_eq!(a.timeout_seconds, Some(3));
    assert_eq!(a.callback_timeout_seconds, CallbackTimeout::Never);
    assert_eq!(a.on_timeout, Some(OnTimeout::Retry));
    assert_eq!(a.mode, Some(Mode::Sync));
    assert_eq!(
        fat.references,
        vec![Reference { id: Uuid::from_u128(0xaa), path: "children[1].id".into() }]
    );
    // What the API returns for the step reads back as the same step.
    let json = serde_json::to_value(&fat.steps[1]).unwrap();
    assert_eq!(json["action"]["callbackTimeoutSeconds"], Value::Null);
    assert_eq!(json["stepType"], "Action");
    let back: aetr_engine::Step = serde_json::from_value(json).unwrap();
    assert_eq!(back, fat.steps[1]);
}

#[test]
fn defaults_apply_when_options_are_absent() {
    let fat = parse_fat(&api("a")).unwrap();
    let StepBody::Action { action: Action::Api(a) } = &fat.steps[0].body else { panic!() };
    assert_eq!(
        a.effective_retry(),
        RetryPolicy { max_attempts: 3, backoff_ms: 1000, max_backoff_ms: 60_000 }
    );
    assert_eq!(a.effective_timeout_seconds(), 30);
    assert_eq!(a.callback_timeout_seconds(Some(604_800)), Some(604_800));
    assert_eq!(a.effective_mode(), Mode::Callback);
    assert_eq!(a.effective_on_timeout(), OnTimeout::Fail);
    let fat = parse_fat(&par("p", vec![])).unwrap();
    assert_eq!(fat.steps[0].body, StepBody::Parallel { reducer: Reducer::Last });
}

#[test]
fn shape_errors_are_400_and_name_the_path() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "expected an object, found an array"),
        (json!({"stepType": "Sequential"}), "name: required"),
        (json!({"name": "", "stepType": "Sequential"}), "name: must not be empty"),
        (json!({"name": 5, "stepType": "Sequential"}), "name: expected a string, found a number"),
        (json!({"name": "x", "stepType": "Serial"}), "stepType: unknown value \"Serial\"; expected one of Sequential, Parallel, Map, Branch, Action"),
        (json!({"name": "x"}), "stepType: required"),
        (json!({"name": "x", "stepType": "Action"}), "action: required for an Action step"),
        (json!({"name": "x", "stepType": "Sequential", "reducer": {"type": "last"}}), "reducer: only a Parallel or a Map step has one; this is a Sequential step"),
        (json!({"name": "x", "stepType": "Sequential", "colour": "red"}), "colour: unknown field; expected one of id, name, stepType, action, reducer, map, branch, inputSchema, children"),
        (json!({"name": "x", "stepType": "Sequential", "id": "nope"}), "id: \"nope\" is not a UUID"),
        (json!({"name": "x", "stepType": "Sequential", "children": {}}), "children: expected an array, found an object"),
        (seq("s", vec![json!({"stepType": "Sequential", "mapper": {"type": "no-op"}})]), "children[0].name: required"),
        (seq("s", vec![json!({"mapper": {"type": "no-op"}})]), "children[0].name: required, unless the child refers to a stored step by id"),
        (seq("s", vec![json!({"id": "x1"})]), "children[0].id: \"x1\" is not a UUID"),
        (seq("s", vec![noop("a"), with_mapper_raw(noop("b"), json!({"type": "jss"}))]), "children[1].mapper.type: unknown value \"jss\"; expected one of js, no-op"),
        (seq("s", vec![with_mapper_raw(noop("b"), json!({"type": "js"}))]), "children[0].mapper.js: required"),
        (json!({"name": "x", "stepType": "Parallel", "reducer": {"type": "first"}}), "reducer.type: unknown value \"first\"; expected one of js, last, collect, no-op"),
        (action(json!({"type": "http"})), "action.type: unknown value \"http\"; expected one of api, no-op, wait, manual"),
        (action(json!({"type": "api"})), "action.url: required"),
        (action(json!({"type": "api", "url": "svc/a"})), "action.url: \"svc/a\" is not an absolute URL: relative URL without a base"),
        (action(json!({"type": "api", "url": "ftp://svc/a"})), "action.url: scheme \"ftp\" is not supported; use http or https"),
        (action(json!({"type": "api", "url": "http://svc/a?aetr=1"})), "action.url: has its own \"aetr\" query parameter, which aetr sets to the callback URL"),
        (action(json!({"type": "api", "url": "http://s/", "headers": {"Bad Name": "x"}})), "action.headers.Bad Name: is not a valid header name"),
        (action(json!({"type": "api", "url": "http://s/", "headers": {"X": "a\nb"}})), "action.headers.X: contains a control character"),
        (action(json!({"type": "api", "url": "http://s/", "headers": {"X": 1}})), "action.headers.X: expected a string, found a number"),
        (action(json!({"type": "api", "url": "http://s/", "retry": {"maxAttempts": 0}})), "action.retry.maxAttempts: must be at least 1"),
        (action(json!({"type": "api", "url": "http://s/", "retry": {"backoffMs": 5, "maxBackoffMs": 1}})), "action.retry.maxBackoffMs: must be at least backoffMs"),
        (action(json!({"type": "api", "url": "http://s/", "retry": {"tries": 2}})), "action.retry.tries: unknown field; expected one of maxAttempts, backoffMs, maxBackoffMs"),
        (action(json!({"type": "api", "url": "http://s/", "timeoutSeconds": 1.5})), "action.timeoutSeconds: expected a whole number, found 1.5"),
        (action(json!({"type": "api", "url": "http://s/", "timeoutSeconds": -1})), "action.timeoutSeconds: expected a whole number, found -1"),
        (action(json!({"type": "api", "url": "http://s/", "callbackTimeoutSeconds": 0})), "action.callbackTimeoutSeconds: must be at least 1"),
        (action(json!({"type": "api", "url": "http://s/", "onTimeout": "ignore"})), "action.onTimeout: unknown value \"ignore\"; expected one of fail, retry"),
        (action(json!({"type": "api", "url": "http://s/", "mode": "async"})), "action.mode: unknown value \"async\"; expected one of callback, sync"),
        (action(json!({"type": "no-op", "url": "http://s/"})), "action.url: unknown field; expected one of type"),
        (json!({"name": "x", "stepType": "Action", "action": {"type": "no-op"}, "children": [noop("c")]}), "children: an Action step has no children"),
        (json!({"name": "x", "stepType": "Branch"}), "branch: required for a Branch step"),
        (json!({"name": "x", "stepType": "Branch", "branch": {"type": "no-op"}}), "branch.type: unknown value \"no-op\"; expected one of js"),
        (json!({"name": "x", "stepType": "Parallel", "branch": {"type": "js", "js": "function apply(d) {}"}}), "branch: only a Branch step has one; this is a Parallel step"),
        (json!({"name": "x", "stepType": "Branch", "branch": {"type": "js", "js": "function apply(d) {}"}, "reducer": {"type": "last"}}), "reducer: only a Parallel or a Map step has one; this is a Branch step"),
        (action(json!({"type": "wait"})), "action.seconds: required for a wait"),
        (action(json!({"type": "wait", "seconds": -1})), "action.seconds: expected a whole number, found -1"),
        (action(json!({"type": "wait", "seconds": 5, "url": "http://s/"})), "action.url: unknown field; expected one of type, seconds"),
        (action(json!({"type": "manual", "callbackTimeoutSeconds": 0})), "action.callbackTimeoutSeconds: must be at least 1"),
        (json!({"name": "m", "stepType": "Map", "children": [noop("a"), noop("b")]}), "children: a Map step has exactly one child; it has 2"),
        (json!({"name": "m", "stepType": "Map"}), "children: a Map step has exactly one child; it has 0"),
        (json!({"name": "m", "stepType": "Map", "map": {"maxConcurrency": 0}, "children": [noop("a")]}), "map.maxConcurrency: must be at least 1"),
        (json!({"name": "m", "stepType": "Map", "map": {"items": 5}, "children": [noop("a")]}), "map.items: expected a string, found a number"),
        (json!({"name": "m", "stepType": "Map", "map": {"limit": 5}, "children": [noop("a")]}), "map.limit: unknown field; expected one of items, maxConcurrency"),
        (json!({"name": "x", "stepType": "Parallel", "map": {}}), "map: only a Map step has one; this is a Parallel step"),
    ];
    for (body, expected) in cases {
        assert_eq!(one_error(&body), (expected.to_owned(), 400), "for {body}");
    }
}

fn action(a: Value) -> Value {
    json!({"name": "a", "stepType": "Action", "action": a})
}

fn with_mapper_raw(mut step: Value, mapper: Value) -> Value {
    step["mapper"] = mapper;
    step
}

#[test]
fn all_errors_are_reported_together() {
    let body = json!({"name": "", "stepType": "Parallel", "children": [
        {"name": "a", "stepType": "Action", "action": {"type": "api", "url": "nope"}},
        {"name": "b", "stepType": "Action", "action": {"type": "api", "url": "http://s/", "mode": "x"}}
    ]});
    let errs = parse_fat(&body).unwrap_err();
    let texts: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[0].starts_with("name:"));
    assert!(texts[1].starts_with("children[0].action.url:"));
    assert!(texts[2].starts_with("children[1].action.mode:"));
}

#[test]
fn scripts_that_do_not_compile_and_limits_are_422() {
    let bad = with_reducer(
        par(
            "p",
            vec![
                with_mapper(noop("a"), "function apply(d) { return d; }"),
                with_mapper(noop("b"), "function apply(d) { return ; ) }"),
            ],
        ),
        "function nope() {}",
    );
    let errs = parse_fat(&bad).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].0.starts_with("reducer.js: "), "{errs:?}");
    assert!(errs[0].0.contains("apply"), "{errs:?}");
    assert!(errs[1].0.starts_with("children[1].mapper.js: "), "{errs:?}");
    assert!(errs.iter().all(|e| e.1 == 422));

    let limits = Limits {
        max_depth: 2,
        max_children: 2,
        max_name_chars: 3,
        max_script_bytes: 40,
        max_url_bytes: 20,
        max_headers: 1,
        ..Limits::default()
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            seq("s", vec![seq("t", vec![seq("u", vec![seq("v", vec![])])])]),
            "children[0].children[0].children[0]: the tree is deeper than the limit of 2 levels (AETR_MAX_DEPTH)",
        ),
        (
            seq("s", vec![noop("a"), noop("b"), noop("c")]),
            "children: has 3 children, more than the limit of 2 (AETR_MAX_CHILDREN)",
        ),
        (noop("long"), "name: is 4 characters, more than the limit of 3 (AETR_MAX_NAME_CHARS)"),
        (
            seq(
                "s",
                vec![with_mapper(noop("a"), "function apply(d) { return d + 'a long script'; }")],
            ),
            "children[0].mapper.js: is 49 bytes, more than the limit of 40 (AETR_MAX_SCRIPT_BYTES)",
        ),
        (
            action(json!({"type": "api", "url": "http://svc.test/a/long"})),
            "action.url: is 22 bytes, more than the limit of 20 (AETR_MAX_URL_BYTES)",
        ),
        (
            action(json!({"type": "api", "url": "http://s/", "headers": {"A": "1", "B": "2"}})),
            "action.headers: has 2 headers, more than the limit of 1 (AETR_MAX_HEADERS)",
        ),
        (
            action(json!({"type": "api", "url": "http://s/", "headers": {"Idempotency-Key": "1"}})),
            "action.headers.Idempotency-Key: is set by aetr and cannot be configured",
        ),
        (
            action(json!({"type": "api", "url": "http://s/", "timeoutSeconds": 3601})),
            "action.timeoutSeconds: must be at most 3600",
        ),
        (
            action(json!({"type": "wait", "seconds": 31_536_001})),
            "action.seconds: must be at most 31536000",
        ),
    ];
    for (body, expected) in cases {
        let errs = parse_fat_with(&body, &limits).unwrap_err();
        assert_eq!(errs, vec![(expected.to_owned(), 422)], "for {body}");
    }
}

#[test]
fn every_script_is_compile_checked_when_saved() {
    let mut scripts = FakeScripts::default();
    let mut ids = counter_ids();
    let limits = Limits::default();
    let tree = with_reducer(
        par("p", vec![with_mapper(noop("a"), "m1"), with_mapper(noop("b"), "m2")]),
        "r",
    );
    Parser {
        limits: &limits,
        scripts: &mut scripts,
        new_id: &mut ids,
        urls: &AnyUrl,
        pools: &AnyPool,
    }
    .fat_tree(&tree)
    .unwrap();
    assert_eq!(scripts.checks, 3);
}

#[test]
fn a_step_defined_twice_must_be_defined_the_same() {
    let id = "00000000-0000-0000-0000-000000000009";
    let mut child = noop("a");
    child["id"] = json!(id);
    let fat = parse_fat(&seq("s", vec![child.clone(), child.clone()])).unwrap();
    assert_eq!(fat.steps.len(), 2, "the shared child is defined once");
    assert_eq!(fat.steps[0].children.len(), 2);
    let mut other = noop("b");
    other["id"] = json!(id);
    assert_eq!(
        one_error(&seq("s", vec![child, other])),
        (format!("children[1].id: step {id} is defined twice with different contents (first at children[0])"), 400)
    );
}

#[test]
fn slim_steps_take_children_as_ids_or_links() {
    let mut scripts = BoaRunner::default();
    let mut ids = counter_ids();
    let limits = Limits::default();
    let mut p = Parser {
        limits: &limits,
        scripts: &mut scripts,
        new_id: &mut ids,
        urls: &AnyUrl,
        pools: &AnyPool,
    };
    let a = "00000000-0000-0000-0000-00000000000a";
    let slim = p.slim_step(&json!({"name": "s", "stepType": "Sequential", "children": [a, {"id": a, "mapper": {"type": "no-op"}}]})).unwrap();
    assert_eq!(slim.step.id, Uuid::from_u128(1));
    assert_eq!(slim.step.children.len(), 2);
    assert_eq!(slim.step.children[1].mapper, Some(Mapper::NoOp));
    assert_eq!(
        slim.references[1],
        Reference { id: Uuid::from_u128(0xa), path: "children[1].id".into() }
    );
    let err = p
        .slim_step(&json!({"name": "s", "stepType": "Sequential", "children": [{"name": "x"}]}))
        .unwrap_err();
    assert_eq!(
        err.messages(),
        vec![
            "children[0].name: unknown field; expected one of id, mapper",
            "children[0].id: required"
        ]
    );
    assert_eq!(err.severity(), Severity::Invalid);

    let (links, refs) = p.child_list(&json!({"children": [{"id": a}]})).unwrap();
    assert_eq!((links.len(), refs[0].path.as_str()), (1, "children[0].id"));
    let (links, _) = p.child_list(&json!([a, a])).unwrap();
    assert_eq!(links.len(), 2);
    let err = p
        .child_list(&json!({"children": [{"id": a, "mapper": {"type": "js", "js": "1 +"}}]}))
        .unwrap_err();
    assert_eq!(err.severity(), Severity::Refused);
    assert!(err.messages()[0].starts_with("children[0].mapper.js: "));
}

#[test]
fn run_input_is_raw_for_strings_and_json_text_otherwise() {
    assert_eq!(run_input(&json!("a \"b\"")), Some("a \"b\"".to_owned()));
    assert_eq!(run_input(&json!(null)), None);
    assert_eq!(run_input(&json!({"a": [1, true]})), Some(r#"{"a":[1,true]}"#.to_owned()));
    assert_eq!(run_input(&json!(42)), Some("42".to_owned()));
}

/// Refuses every URL on one host.
struct DenyHost(&'static str);

impl UrlPolicy for DenyHost {
    fn check(&self, url: &url::Url) -> Result<(), String> {
        match url.host_str() {
            Some(host) if host == self.0 => Err(format!("{host} is denied")),
            _ => Ok(()),
        }
    }
}

#[test]
fn a_url_that_the_policy_refuses_is_a_422_at_its_path() {
    let tree = json!({
        "name": "root", "stepType": "Sequential",
        "children": [
            {"name": "ok", "stepType": "Action", "action": {"type": "api", "url": "http://svc.test/"}},
            {"name": "bad", "stepType": "Action", "action": {"type": "api", "url": "http://evil.test/x"}},
        ]
    });
    let mut scripts = BoaRunner::default();
    let mut ids = counter_ids();
    let errs = Parser {
        limits: &Limits::default(),
        scripts: &mut scripts,
        new_id: &mut ids,
        urls: &DenyHost("evil.test"),
        pools: &AnyPool,
    }
    .fat_tree(&tree)
    .unwrap_err();
    let errs: Vec<(String, u16)> =
        errs.errors().iter().map(|e| (e.to_string(), e.severity.http_status())).collect();
    assert_eq!(errs, [("children[1].action.url: evil.test is denied".to_owned(), 422)]);
}

/// AETR's editor sends `"reducer": {"type": "no-op"}` when it switches a Parallel step to
/// Sequential: that is accepted and dropped; any other reducer on a Sequential stays a 400.
#[test]
fn a_sequential_step_takes_a_no_op_reducer_and_drops_it() {
    let tree = json!({"name": "s", "stepType": "Sequential", "reducer": {"type": "no-op"},
        "children": [noop("a")]});
    let fat = parse_fat(&tree).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(fat.steps[0].body, StepBody::Sequential);
    let js = json!({"name": "s", "stepType": "Sequential",
        "reducer": {"type": "js", "js": "function apply(r) { return 1; }"}});
    assert_eq!(
        one_error(&js),
        ("reducer: only a Parallel or a Map step has one; this is a Sequential step".into(), 400)
    );
}

#[test]
fn a_services_result_is_trimmed_and_whitespace_alone_is_none() {
    use aetr_engine::parse::service_result;
    assert_eq!(service_result("done\n".into()).as_deref(), Some("done"));
    assert_eq!(service_result("  a b \t".into()).as_deref(), Some("a b"));
    assert_eq!(service_result("as is".into()).as_deref(), Some("as is"));
    assert_eq!(service_result(" \n\t ".into()), None);
    assert_eq!(service_result(String::new()), None);
}

#[test]
fn a_branch_function_that_does_not_compile_is_422_and_its_children_need_distinct_names() {
    let bad = json!({"name": "b", "stepType": "Branch", "branch": {"type": "js", "js": "function nope() {}"}});
    let errs = parse_fat(&bad).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].0.starts_with("branch.js: ") && errs[0].0.contains("apply"), "{errs:?}");
    assert_eq!(errs[0].1, 422);

    let twins = json!({"name": "b", "stepType": "Branch",
        "branch": {"type": "js", "js": "function apply(d) { return 'x'; }"},
        "children": [noop("x"), api("y"), noop("x")]});
    let fat = parse_fat(&twins).unwrap();
    let steps: std::collections::HashMap<_, _> = fat.steps.into_iter().map(|s| (s.id, s)).collect();
    let err = aetr_engine::graph::check_tree(fat.root, &steps, &Limits::default()).unwrap_err();
    assert_eq!(err.severity.http_status(), 400);
    assert!(err.message.contains("two children named \"x\""), "{}", err.message);
}

#[test]
fn a_map_has_collect_by_default_and_its_items_function_is_compiled_when_saved() {
    let map =
        |spec: Value| json!({"name": "m", "stepType": "Map", "map": spec, "children": [noop("a")]});
    let fat = parse_fat(&map(json!({"maxConcurrency": 3}))).unwrap();
    let want = aetr_engine::MapSpec { items: None, max_concurrency: Some(3) };
    assert_eq!(fat.steps[0].body, StepBody::Map { map: want, reducer: Reducer::Collect });
    let (message, status) = one_error(&map(json!({"items": "function apply(d) { return [ ; }"})));
    assert!(message.starts_with("map.items: "), "{message}");
    assert_eq!(status, 422);
}
