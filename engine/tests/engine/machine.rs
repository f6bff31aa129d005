//! The run state machine, rule by rule.

use aetr_engine::machine::{
    Event, Fault, Phase, Reply, Retry, RunChange, State, StateChange, Work,
};
use serde_json::json;

use crate::support::*;

#[test]
fn sequential_passes_each_mapped_result_to_the_next_child() {
    let tree =
        seq("s", vec![with_mapper(api("a"), "function apply(d) { return d + '!'; }"), api("b")]);
    let mut h = Harness::new(&tree);
    h.start(Some("in"));
    assert!(!h.is_due("b"), "b waits for a");
    let a = h.dispatch("a");
    assert_eq!(h.state("a").input.as_deref(), Some("in"));
    assert_eq!(h.succeed("a", a, "ra"), Reply::Done);
    assert_eq!(h.state("a").result.as_deref(), Some("ra"));
    assert_eq!(h.state("a").output.as_deref(), Some("ra!"));
    let b = h.dispatch("b");
    assert_eq!(h.state("b").input.as_deref(), Some("ra!"));
    h.succeed("b", b, "rb");
    assert_eq!(h.run.root().state(), State::Complete);
    assert_eq!(h.run.root().result.as_deref(), Some("rb"));
    assert_eq!(
        h.last.as_ref().unwrap().run,
        Some(RunChange::Complete { result: Some("rb".into()) })
    );
}

#[test]
fn parallel_reducer_sees_results_in_child_order_not_finishing_order() {
    let tree = with_reducer(
        par(
            "p",
            vec![
                api("a"),
                with_mapper(api("b"), "function apply(d) { return d.toUpperCase(); }"),
                api("c"),
            ],
        ),
        "function apply(rs) { return rs.join('|'); }",
    );
    let mut h = Harness::new(&tree);
    h.start(Some("x"));
    let (a, b, c) = (h.dispatch("a"), h.dispatch("b"), h.dispatch("c"));
    for n in ["a", "b", "c"] {
        assert_eq!(h.state(n).input.as_deref(), Some("x"), "every child gets the parent's input");
    }
    h.succeed("c", c, "3");
    h.succeed("a", a, "1");
    assert_eq!(h.state("p").remaining, 1);
    assert_eq!(h.run.root().state(), State::Executing);
    h.succeed("b", b, "two");
    assert_eq!(h.run.root().result.as_deref(), Some("1|TWO|3"));
    assert_eq!(h.run.root().state(), State::Complete);
}

#[test]
fn default_reducer_is_the_last_child_in_child_order() {
    let mut h = Harness::new(&par("p", vec![api("a"), api("b")]));
    h.start(None);
    let (a, b) = (h.dispatch("a"), h.dispatch("b"));
    h.succeed("b", b, "B");
    h.succeed("a", a, "A");
    assert_eq!(h.run.root().result.as_deref(), Some("B"));
}

#[test]
fn reducer_gets_null_for_a_child_without_result() {
    let tree =
        with_reducer(par("p", vec![api("a"), api("b")]), "function apply(rs) { return rs; }");
    let mut h = Harness::new(&tree);
    h.start(None);
    let (a, b) = (h.dispatch("a"), h.dispatch("b"));
    h.send(Event::Result { node: h.idx("a"), attempt: a, result: None });
    h.succeed("b", b, "B");
    assert_eq!(h.run.root().result.as_deref(), Some(r#"[null,"B"]"#));
}

#[test]
fn branches_advance_independently() {
    let mut h = Harness::new(&par("p", vec![seq("s", vec![api("a1"), api("a2")]), api("b")]));
    h.start(Some("in"));
    let a1 = h.dispatch("a1");
    let _b = h.dispatch("b");
    h.succeed("a1", a1, "r1");
    assert!(h.is_due("a2"), "a2 starts although b has not called back");
    assert_eq!(h.state("b").state(), State::Executing);
}

#[test]
fn empty_parents_and_noop_actions_complete_at_once() {
    let tree = seq(
        "root",
        vec![
            seq("empty-seq", vec![]),
            with_mapper(noop("n"), "function apply(d) { return d + '+n'; }"),
            with_reducer(
                par("empty-par", vec![]),
                "function apply(rs) { return 'len=' + rs.length; }",
            ),
        ],
    );
    let mut h = Harness::new(&tree);
    h.start(Some("x"));
    assert!(h.dispatches.is_empty());
    assert_eq!(h.state("empty-seq").output.as_deref(), Some("x"));
    assert_eq!(h.state("n").output.as_deref(), Some("x+n"));
    assert_eq!(h.run.root().result.as_deref(), Some("len=0"));
    assert_eq!(h.run.root().state(), State::Complete);
}

#[test]
fn empty_parallel_with_default_reducer_has_no_result_and_noop_reducer_discards() {
    let mut h = Harness::new(&par("p", vec![]));
    h.start(Some("x"));
    assert_eq!(h.run.root().state(), State::Complete);
    assert_eq!(h.run.root().result, None);

    let mut tree = par("q", vec![api("a")]);
    tree["reducer"] = json!({"type": "no-op"});
    let mut h = Harness::new(&tree);
    h.start(Some("x"));
    let a = h.dispatch("a");
    h.succeed("a", a, "A");
    assert_eq!(h.run.root().state(), State::Complete);
    assert_eq!(h.run.root().result, None);
}

#[test]
fn a_failure_fails_the_ancestors_and_the_run_and_stops_new_work() {
    let mut h = Harness::new(&par("p", vec![seq("s", vec![api("a1"), api("a2")]), api("b")]));
    h.start(None);
    let a1 = h.dispatch("a1");
    let b = h.dispatch("b");
    assert_eq!(h.fail("b", b, "service said no"), Reply::Done);
    assert_eq!(
        h.last.as_ref().unwrap().run,
        Some(RunChange::Error { node: h.idx("b"), error: "service said no".into() })
    );
    assert_eq!(h.run.root().state(), State::Error);
    assert_eq!(h.run.root().error.as_deref(), Some("service said no"));
    assert_eq!(h.run.root().fault, Some(Fault::Child(h.idx("b"))));
    // A late callback is recorded and answered, but does not revive the run.
    assert_eq!(h.succeed("a1", a1, "late"), Reply::Done);
    assert_eq!(h.state("a1").phase, Phase::Held);
    assert_eq!(h.state("a1").state(), State::Complete);
    assert!(!h.is_due("a2"), "nothing new starts after a failure");
    assert_eq!(h.state("s").state(), State::Executing);
    assert_eq!(h.run.root().state(), State::Error);
    assert_eq!(h.last.as_ref().unwrap().run, None, "the run fails once");
}

#[test]
fn a_due_dispatch_is_skipped_after_the_run_fails() {
    let mut h = Harness::new(&par("p", vec![api("a"), api("b")]));
    h.start(None);
    let a = h.dispatch("a");
    h.fail("a", a, "no");
    let b = h.idx("b");
    assert_eq!(h.send(Event::Dispatched { node: b, attempt: 1 }), Reply::Skip);
    assert_eq!(h.run.node(b).state(), State::Pending);
    assert_eq!(h.run.node(b).due_at, None, "parked: no longer due");
    // A redrive makes it due again, with the same attempt (it was never sent).
    let nodes: Vec<u32> = (0..h.run.snapshot().len() as u32)
        .filter(|&i| matches!(h.run.node(i).phase, Phase::Error | Phase::Ready))
        .collect();
    h.dispatches.clear();
    assert_eq!(h.send(Event::Redrive { nodes }), Reply::Done);
    assert_eq!(h.run.node(b).due_at, Some(NOW));
    assert!(h.dispatches.iter().any(|&(n, attempt, _)| n == b && attempt == 1));
}

#[test]
fn callbacks_are_fenced_on_state_and_attempt() {
    let mut h = Harness::new(&seq("s", vec![api("a"), api("b")]));
    h.start(None);
    let a = h.idx("a");
    // Not yet sent: no token is out.
    assert_eq!(h.send(Event::Result { node: a, attempt: 1, result: None }), Reply::NotWaiting);
    let attempt = h.dispatch("a");
    assert_eq!(h.send(Event::Result { node: a, attempt: 7, result: None }), Reply::NotWaiting);
    assert_eq!(h.succeed("a", attempt, "1"), Reply::Done);
    assert_eq!(h.succeed("a", attempt, "again"), Reply::Repeat);
    assert_eq!(h.fail("a", attempt, "late failure"), Reply::Repeat);
    assert_eq!(h.state("a").result.as_deref(), Some("1"));
    // A node that was never reached.
    let mut h = Harness::new(&seq("s", vec![api("a"), api("b")]));
    h.start(None);
    assert_eq!(h.succeed("b", 1, "x"), Reply::NotWaiting);
}

#[test]
fn a_callback_before_the_post_returns_wins_over_the_post_outcome() {
    let mut h = Harness::new(&api("a"));
    h.start(Some("in"));
    let a = h.dispatch("a");
    h.succeed("a", a, "done");
    let node = h.idx("a");
    let ev = Event::PostFailed {
        node,
        attempt: a,
        error: "timed out".into(),
        retry: Retry::After(None),
    };
    assert_eq!(h.send(ev), Reply::Ignored);
    assert_eq!(h.run.root().state(), State::Complete);
}

#[test]
fn dispatch_is_sent_once_per_attempt_and_resent_unchanged() {
    let mut h = Harness::new(&api("a"));
    h.start(None);
    let node = h.idx("a");
    assert_eq!(h.state("a").started_at, None, "not executing until sent");
    assert_eq!(h.state("a").due_at, Some(NOW), "due at once");
    let attempt = h.dispatch("a");
    assert_eq!(h.state("a").started_at, Some(NOW));
    assert_eq!(h.state("a").due_at, Some(NOW + 60_000), "the callback deadline");
    // After a crash, the same attempt is sent again.
    assert_eq!(h.send(Event::Dispatched { node, attempt }), Reply::Send);
    assert_eq!(h.send(Event::Dispatched { node, attempt: attempt + 1 }), Reply::Skip);
    h.succeed("a", attempt, "r");
    assert_eq!(h.send(Event::Dispatched { node, attempt }), Reply::Skip);
}

#[test]
fn retryable_post_failures_back_off_then_give_up() {
    let tree = json!({"name": "a", "stepType": "Action",
        "action": {"type": "api", "url": "http://svc.test/a", "retry": {"maxAttempts": 3, "backoffMs": 1000, "maxBackoffMs": 1500}}});
    let mut h = Harness::new(&tree);
    h.start(None);
    let node = h.idx("a");
    let first = h.dispatch("a");
    h.send(Event::PostFailed {
        node,
        attempt: first,
        error: "HTTP 503".into(),
        retry: Retry::After(None),
    });
    // Full jitter: 0.5 × min(1500, 1000 × 2^0).
    assert_eq!(h.dispatches, vec![(node, 2, NOW + 500)]);
    assert_eq!(h.state("a").state(), State::Pending);
    let second = h.dispatch("a");
    h.send(Event::PostFailed {
        node,
        attempt: second,
        error: "HTTP 429".into(),
        retry: Retry::After(Some(7_000)),
    });
    assert_eq!(h.dispatches, vec![(node, 3, NOW + 7_000)], "a 429's Retry-After is honoured");
    let third = h.dispatch("a");
    h.send(Event::PostFailed {
        node,
        attempt: third,
        error: "HTTP 503".into(),
        retry: Retry::After(None),
    });
    assert_eq!(h.run.root().state(), State::Error);
    assert_eq!(h.run.root().error.as_deref(), Some("HTTP 503 (after 3 attempts)"));
    assert_eq!(h.run.root().attempt, 3);
}

#[test]
fn a_non_retryable_post_failure_fails_at_once() {
    let mut h = Harness::new(&api("a"));
    h.start(None);
    let node = h.idx("a");
    let a = h.dispatch("a");
    h.send(Event::PostFailed { node, attempt: a, error: "HTTP 400".into(), retry: Retry::Never });
    assert_eq!(h.run.root().state(), State::Error);
    assert_eq!(h.run.root().error.as_deref(), Some("HTTP 400"));
    assert!(h.dispatches.is_empty());
}

#[test]
fn an_earlier_attempt_may_still_call_back_during_a_retry() {
    let mut h = Harness::new(&api("a"));
    h.start(None);
    let node = h.idx("a");
    let first = h.dispatch("a");
    h.send(Event::PostFailed {
        node,
        attempt: first,
        error: "timed out".into(),
        retry: Retry::After(None),
    });
    assert_eq!(h.succeed("a", first, "it arrived after all"), Reply::Done);
    assert_eq!(h.run.root().result.as_deref(), Some("it arrived after all"));
    assert_eq!(h.send(Event::Dispatched { node, attempt: 2 }), Reply::Skip);
}

#[test]
fn callback_timeout_fails_or_retries_with_a_new_attempt() {
    let mut h = Harness::new(&api("a"));
    h.start(None);
    let node = h.idx("a");
    let a = h.dispatch("a");
    assert_eq!(h.send(Event::Timeout { node, attempt: a + 1 }), Reply::Ignored);
    h.send(Event::Timeout { node, attempt: a });
    assert_eq!(h.run.root().error.as_deref(), Some("no callback within 60 s (attempt 1)"));
    assert_eq!(h.succeed("a", a, "too late"), Reply::NotWaiting);

    let tree = json!({"name": "a", "stepType": "Action",
        "action": {"type": "api", "url": "http://svc.test/a", "onTimeout": "retry", "callbackTimeoutSeconds": 5}});
    let mut h = Harness::new(&tree);
    h.start(None);
    let first = h.dispatch("a");
    assert_eq!(h.state("a").due_at, Some(NOW + 5_000));
    h.send(Event::Timeout { node, attempt: first });
    assert_eq!(h.state("a").state(), State::Pending);
    assert_eq!(h.succeed("a", first, "late"), Reply::Superseded);
    let second = h.dispatch("a");
    assert_eq!(second, 2);
    assert_eq!(h.succeed("a", second, "ok"), Reply::Done);
    assert_eq!(h.run.root().state(), State::Complete);
}

#[test]
fn a_callback_timeout_of_null_waits_for_ever_and_sync_actions_wait_for_no_callback() {
    for action in [
        json!({"type": "api", "url": "http://s.test/", "callbackTimeoutSeconds": null}),
        json!({"type": "api", "url": "http://s.test/", "mode": "sync"}),
    ] {
        let mut h = Harness::new(&json!({"name": "a", "stepType": "Action", "action": action}));
        h.start(None);
        h.dispatch("a");
        assert_eq!(h.state("a").due_at, None);
    }
}

#[test]
fn mapper_and_reducer_errors_fail_their_node_with_a_prefix() {
    let tree =
        seq("s", vec![with_mapper(api("a"), "function apply(d) { throw new Error('bad data'); }")]);
    let mut h = Harness::new(&tree);
    h.start(None);
    let a = h.dispatch("a");
    h.succeed("a", a, "x");
    assert_eq!(h.state("a").error.as_deref(), Some("mapper: bad data"));
    assert_eq!(h.state("a").fault, Some(Fault::Mapper));
    assert_eq!(h.state("a").result.as_deref(), Some("x"), "the result is kept");
    assert_eq!(h.run.root().state(), State::Error);

    let tree = with_reducer(par("p", vec![api("a")]), "function apply(rs) { null.x; }");
    let mut h = Harness::new(&tree);
    h.start(None);
    let a = h.dispatch("a");
    h.succeed("a", a, "x");
    assert!(
        h.run.root().error.as_deref().unwrap().starts_with("reducer: "),
        "{:?}",
        h.run.root().error
    );
    assert_eq!(h.run.root().fault, Some(Fault::Reducer));
}

#[test]
fn cancel_stops_everything_and_later_callbacks_are_refused() {
    let mut h = Harness::new(&par("p", vec![api("a"), seq("s", vec![api("b"), api("c")])]));
    h.start(None);
    let a = h.dispatch("a");
    assert_eq!(h.send(Event::Cancel), Reply::Done);
    assert_eq!(h.last.as_ref().unwrap().work, vec![Work::CancelUnfinished]);
    for n in ["p", "a", "s", "b", "c"] {
        assert_eq!(h.state(n).state(), State::Cancelled, "{n}");
    }
    assert_eq!(h.succeed("a", a, "late"), Reply::NotWaiting);
    assert_eq!(h.send(Event::Dispatched { node: h.idx("b"), attempt: 1 }), Reply::Skip);
    assert_eq!(h.send(Event::Cancel), Reply::Conflict("the run has already finished"));
    assert_eq!(
        h.send(Event::Redrive { nodes: vec![] }),
        Reply::Conflict("only a run in Error can be retried")
    );
}

#[test]
fn redrive_resends_failed_actions_with_a_new_attempt_and_supersedes_the_old_token() {
    let mut h = Harness::new(&seq("s", vec![api("a"), api("b")]));
    h.start(Some("in"));
    let a = h.dispatch("a");
    h.fail("a", a, "down");
    assert_eq!(
        h.send(Event::Start { input: None }),
        Reply::Conflict("the run has already started")
    );
    let failed: Vec<u32> = (0..h.run.snapshot().len() as u32)
        .filter(|&i| h.run.node(i).phase == Phase::Error)
        .collect();
    assert_eq!(h.send(Event::Redrive { nodes: failed }), Reply::Done);
    assert_eq!(h.last.as_ref().unwrap().run, Some(RunChange::Resumed));
    assert_eq!(h.run.root().state(), State::Executing);
    assert_eq!(h.state("a").input.as_deref(), Some("in"), "the input is kept");
    assert_eq!(h.succeed("a", a, "old"), Reply::Superseded);
    let again = h.dispatch("a");
    assert_eq!(again, 2, "attempts keep counting across a redrive");
    h.succeed("a", again, "ra");
    let b = h.dispatch("b");
    h.succeed("b", b, "rb");
    assert_eq!(h.run.root().result.as_deref(), Some("rb"));
}

#[test]
fn redrive_reruns_only_a_failed_mapper_and_passes_on_held_results() {
    let tree = par(
        "p",
        vec![
            with_mapper(
                api("a"),
                "function apply(d) { if (d === 'bad') throw new Error('no'); return d; }",
            ),
            api("b"),
        ],
    );
    let mut h = Harness::new(&tree);
    h.start(None);
    let (a, b) = (h.dispatch("a"), h.dispatch("b"));
    h.succeed("a", a, "bad");
    assert_eq!(h.state("a").error.as_deref(), Some("mapper: no"));
    h.succeed("b", b, "B");
    assert_eq!(h.state("b").phase, Phase::Held);
    // A redrive runs only the mapper again, on the result it has (which still fails it).
    let nodes = vec![h.idx("p"), h.idx("a"), h.idx("b")];
    assert_eq!(h.send(Event::Redrive { nodes }), Reply::Done);
    assert!(h.dispatches.is_empty(), "nothing is sent again");
    assert_eq!(
        h.state("a").error.as_deref(),
        Some("mapper: no"),
        "the mapper ran again, and failed again"
    );
    assert_eq!(h.state("b").phase, Phase::Complete, "b's held result was passed on");
    assert_eq!(h.state("p").remaining, 1);
}

#[test]
fn redrive_reruns_a_failed_reducer() {
    let tree = with_reducer(
        par("p", vec![api("a")]),
        "var n = 0; function apply(rs) { if (++n === 1) throw new Error('once'); return 'ok'; }",
    );
    let mut h = Harness::new(&tree);
    h.start(None);
    let a = h.dispatch("a");
    h.succeed("a", a, "x");
    assert_eq!(h.run.root().error.as_deref(), Some("reducer: once"));
    h.send(Event::Redrive { nodes: vec![0] });
    assert_eq!(h.run.root().result.as_deref(), Some("ok"));
    assert_eq!(h.run.root().state(), State::Complete);
}

#[test]
fn a_retry_round_after_redrive_gets_the_whole_policy_again() {
    let tree = json!({"name": "a", "stepType": "Action",
        "action": {"type": "api", "url": "http://svc.test/a", "retry": {"maxAttempts": 2, "backoffMs": 0}}});
    let mut h = Harness::new(&tree);
    h.start(None);
    let node = h.idx("a");
    for round in 0..2 {
        for _ in 0..2 {
            let at = h.dispatch("a");
            h.send(Event::PostFailed {
                node,
                attempt: at,
                error: "HTTP 502".into(),
                retry: Retry::After(None),
            });
        }
        assert_eq!(h.run.root().state(), State::Error, "round {round}");
        h.send(Event::Redrive { nodes: vec![node] });
    }
    assert_eq!(h.dispatch("a"), 5);
}

#[test]
fn a_callback_for_a_wide_parallel_touches_only_its_node_and_the_parent() {
    let leaves: Vec<_> = (0..2000).map(|i| api(&format!("l{i}"))).collect();
    let tree = with_reducer(par("p", leaves), "function apply(rs) { return String(rs.length); }");
    let mut h = Harness::new(&tree);
    h.start(None);
    assert_eq!(h.dispatches.len(), 2000);
    let mut sent = Vec::new();
    for (node, attempt, _) in std::mem::take(&mut h.dispatches) {
        let (out, changed) = h.run.apply(Event::Dispatched { node, attempt }).unwrap();
        assert_eq!((out.reply, changed), (Reply::Send, vec![node]));
        sent.push((node, attempt));
    }
    let last = sent.pop().unwrap();
    for (node, attempt) in sent {
        let (_, changed) =
            h.run.apply(Event::Result { node, attempt, result: Some("r".into()) }).unwrap();
        assert_eq!(changed, vec![0, node], "only the leaf and the parent's countdown");
    }
    let (out, _) =
        h.run.apply(Event::Result { node: last.0, attempt: last.1, result: None }).unwrap();
    assert_eq!(out.work, vec![Work::Reduce { node: 0 }]);
}

#[test]
fn a_callback_after_its_deadline_is_late_even_before_the_timer_fires() {
    let mut h = Harness::new(&api("a"));
    h.start(None);
    let a = h.dispatch("a");
    h.run.ctx.now = NOW + 60_000;
    assert_eq!(h.succeed("a", a, "too late"), Reply::Late);
    assert_eq!(h.run.root().error.as_deref(), Some("no callback within 60 s (attempt 1)"));
    assert_eq!(h.succeed("a", a, "again"), Reply::NotWaiting);
}

#[test]
fn an_event_reports_the_states_it_changed() {
    let mut h = Harness::new(&seq("s", vec![api("a"), api("b")]));
    h.start(None);
    let (s, a, b) = (h.idx("s"), h.idx("a"), h.idx("b"));
    let changes = |h: &Harness| h.last.as_ref().unwrap().changes.clone();
    let change = |node, from, to| StateChange { node, from, to };
    assert_eq!(changes(&h), vec![change(s, State::Pending, State::Executing)]);
    let attempt = h.dispatch("a");
    assert_eq!(changes(&h), vec![change(a, State::Pending, State::Executing)]);
    h.succeed("a", attempt, "ra");
    assert_eq!(changes(&h), vec![change(a, State::Executing, State::Complete)]);
    let attempt = h.dispatch("b");
    h.fail("b", attempt, "down");
    assert_eq!(
        changes(&h),
        vec![change(s, State::Executing, State::Error), change(b, State::Executing, State::Error)]
    );
}

#[test]
fn an_operator_settles_a_stuck_action_and_its_old_attempt_is_superseded() {
    let mut h = Harness::new(&seq(
        "s",
        vec![with_mapper(api("a"), "function apply(d) { return d + '!'; }"), api("b")],
    ));
    h.start(None);
    let (a, b) = (h.idx("a"), h.idx("b"));
    assert_eq!(
        h.send(Event::Settle { node: b, outcome: Ok(None) }),
        Reply::Conflict(
            "only an action that is Pending or Executing (or, to complete it, failed) can be \
             settled by hand"
        ),
        "b has not been reached"
    );
    assert!(matches!(h.send(Event::Settle { node: 0, outcome: Ok(None) }), Reply::Conflict(_)));
    let attempt = h.dispatch("a");
    let by_hand = Event::Settle { node: a, outcome: Ok(Some("by hand".into())) };
    assert_eq!(h.send(by_hand), Reply::Done);
    assert_eq!(h.state("a").output.as_deref(), Some("by hand!"), "the mapper runs");
    assert_eq!(h.succeed("a", attempt, "late"), Reply::Superseded);
    let attempt = h.dispatch("b");
    assert_eq!(h.send(Event::Settle { node: b, outcome: Err("gave up".into()) }), Reply::Done);
    assert_eq!(h.run.root().error.as_deref(), Some("gave up"));
    assert_eq!(h.succeed("b", attempt, "late"), Reply::Superseded);

    // A failed action is completed by hand, and a redrive passes its result on.
    assert_eq!(h.send(Event::Settle { node: b, outcome: Ok(Some("fixed".into())) }), Reply::Done);
    assert_eq!(h.state("b").phase, Phase::Held);
    assert_eq!(h.run.root().state(), State::Error, "the run stays failed until it is retried");
    let redrivable: Vec<u32> =
        (0..3).filter(|&i| matches!(h.run.node(i).phase, Phase::Error | Phase::Held)).collect();
    assert_eq!(h.send(Event::Redrive { nodes: redrivable }), Reply::Done);
    assert_eq!(h.run.root().result.as_deref(), Some("fixed"));
}

#[test]
fn an_operator_redispatches_a_stuck_action_as_a_new_attempt_with_a_new_round() {
    let mut h = Harness::new(&api("a"));
    h.start(None);
    let node = h.idx("a");
    let first = h.dispatch("a");
    assert_eq!(h.send(Event::Redispatch { node }), Reply::Done);
    assert_eq!(h.state("a").state(), State::Pending);
    assert_eq!(h.succeed("a", first, "old"), Reply::Superseded);
    let second = h.dispatch("a");
    assert_eq!(second, first + 1);
    assert_eq!(h.state("a").tries_this_round(), 1);
    assert_eq!(h.succeed("a", second, "ok"), Reply::Done);
    assert_eq!(
        h.send(Event::Redispatch { node }),
        Reply::Conflict("the run has stopped; retry the run instead")
    );
}

fn api_at(name: &str, url: &str) -> serde_json::Value {
    json!({"name": name, "stepType": "Action", "action": {"type": "api", "url": url}})
}

#[test]
fn a_redrive_on_new_definitions_keeps_unchanged_completed_nodes() {
    let tree = |c_url: &str| seq("s", vec![api("a"), api("b"), api_at("c", c_url)]);
    let mut h = Harness::new(&tree("http://svc.test/old"));
    h.start(Some("in"));
    for name in ["a", "b"] {
        let attempt = h.dispatch(name);
        h.succeed(name, attempt, &format!("r{name}"));
    }
    let c = h.dispatch("c");
    h.fail("c", c, "bad url");

    let redriven = h.redrive_latest(&tree("http://svc.test/new"));
    let rerun: Vec<&str> =
        redriven.rerun.iter().map(|&i| h.run.snapshot().node(i).name.as_str()).collect();
    assert_eq!(rerun, ["s", "c"]);
    assert_eq!(h.run.root().state(), State::Executing);
    assert_eq!(h.state("b").output.as_deref(), Some("rb"), "b keeps its result");
    assert!(!h.is_due("a") && !h.is_due("b"));
    assert_eq!(h.succeed("c", c, "old token"), Reply::Superseded);
    let again = h.dispatch("c");
    assert_eq!(again, c + 1, "attempts keep counting");
    assert_eq!(h.state("c").input.as_deref(), Some("rb"));
    h.succeed("c", again, "rc");
    assert_eq!(h.run.root().result.as_deref(), Some("rc"));
}

#[test]
fn a_redrive_on_new_definitions_reruns_a_changed_mapper_alone_and_whatever_its_output_feeds() {
    let tree = |js: &str| seq("s", vec![with_mapper(api("a"), js), api("b")]);
    let mut h = Harness::new(&tree("function apply(d) { throw new Error('oops'); }"));
    h.start(Some("in"));
    let a = h.dispatch("a");
    h.succeed("a", a, "ra");
    assert_eq!(h.run.root().error.as_deref(), Some("mapper: oops"));

    let redriven = h.redrive_latest(&tree("function apply(d) { return d + '!'; }"));
    assert!(redriven.rerun.contains(&h.idx("a")), "a's mapper runs again");
    assert!(!h.is_due("a"), "a is not sent again");
    assert_eq!(h.state("a").output.as_deref(), Some("ra!"));
    let b = h.dispatch("b");
    assert_eq!(h.state("b").input.as_deref(), Some("ra!"));
    h.succeed("b", b, "rb");
    assert_eq!(h.run.root().state(), State::Complete);
}

#[test]
fn a_redrive_on_new_definitions_pairs_nodes_by_path_and_reruns_what_moved() {
    let mut h = Harness::new(&par("p", vec![api("a"), api("b")]));
    h.start(None);
    let a = h.dispatch("a");
    h.succeed("a", a, "ra");
    let b = h.dispatch("b");
    h.fail("b", b, "down");
    // A new first child: every child's path now holds another step.
    let redriven =
        h.redrive_latest(&par("p", vec![api_at("z", "http://svc.test/z"), api("a"), api("b")]));
    assert_eq!(redriven.rerun.len(), 4);
    for name in ["z", "a", "b"] {
        assert!(h.is_due(name), "{name} runs");
    }
    assert_eq!(h.succeed("a", a, "old"), Reply::Superseded, "no old token is taken");
}

fn branch(name: &str, js: &str, children: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"name": name, "stepType": "Branch", "branch": {"type": "js", "js": js},
           "children": children})
}

#[test]
fn a_branch_runs_the_child_it_names_and_skips_the_others_with_their_subtrees() {
    let tree = branch(
        "b",
        "function apply(d) { return d === 'big' ? 'large' : 'small'; }",
        vec![seq("large", vec![api("l1"), api("l2")]), api("small")],
    );
    let mut h = Harness::new(&tree);
    h.start(Some("big"));
    assert!(!h.is_due("small"));
    assert_eq!(h.state("small").state(), State::Skipped);
    let l1 = h.dispatch("l1");
    assert_eq!(h.state("l1").input.as_deref(), Some("big"), "the chosen child gets the input");
    h.succeed("l1", l1, "one");
    let l2 = h.dispatch("l2");
    h.succeed("l2", l2, "two");
    assert_eq!(h.run.root().state(), State::Complete);
    assert_eq!(h.run.root().result.as_deref(), Some("two"), "the chosen child's result");

    // The other way, the whole subtree of the child not chosen is skipped.
    let mut h = Harness::new(&tree);
    h.start(Some("tiny"));
    for skipped in ["large", "l1", "l2"] {
        assert_eq!(h.state(skipped).state(), State::Skipped, "{skipped}");
        assert!(h.state(skipped).completed_at.is_some());
    }
    assert!(h.is_due("small"));
}

#[test]
fn a_branch_chooses_by_index_and_null_chooses_none() {
    let by_index = branch("b", "function apply(d) { return 1; }", vec![api("a"), noop("c")]);
    let mut h = Harness::new(&by_index);
    h.start(Some("x"));
    assert_eq!(h.state("a").state(), State::Skipped);
    assert_eq!(h.run.root().result.as_deref(), Some("x"), "the no-op at index 1 ran");

    let none = branch("b", "function apply(d) { return null; }", vec![api("a"), noop("c")]);
    let mut h = Harness::new(&none);
    h.start(Some("in"));
    assert_eq!(h.state("a").state(), State::Skipped);
    assert_eq!(h.state("c").state(), State::Skipped);
    assert_eq!(h.run.root().state(), State::Complete);
    assert_eq!(h.run.root().result.as_deref(), Some("in"), "no choice: the input goes on");
}

#[test]
fn an_unknown_choice_fails_the_branch_and_a_redrive_runs_its_function_again() {
    let tree = branch("b", "function apply(d) { return d; }", vec![noop("yes"), noop("no")]);
    let mut h = Harness::new(&tree);
    h.start(Some("maybe"));
    assert_eq!(h.run.root().state(), State::Error);
    assert_eq!(h.run.root().error.as_deref(), Some("branch: no child named \"maybe\""));
    assert_eq!(h.run.root().fault, Some(Fault::Branch));
    assert_eq!(h.state("yes").state(), State::Pending, "nothing was skipped");

    let mut h = Harness::new(&tree);
    h.start(Some("7"));
    assert_eq!(h.run.root().error.as_deref(), Some("branch: no child named \"7\""));

    let throws = branch("b", "function apply(d) { throw new Error('no way'); }", vec![noop("a")]);
    let mut h = Harness::new(&throws);
    h.start(None);
    assert_eq!(h.run.root().error.as_deref(), Some("branch: no way"));
    assert_eq!(h.send(Event::Redrive { nodes: vec![0] }), Reply::Done);
    assert_eq!(h.run.root().error.as_deref(), Some("branch: no way"), "it ran again, and threw");
}

#[test]
fn collect_gathers_results_as_json_in_child_order() {
    let mut tree = par("p", vec![api("a"), api("b"), api("c"), noop("d")]);
    tree["reducer"] = json!({"type": "collect"});
    let mut h = Harness::new(&tree);
    h.start(None);
    let (a, b, c) = (h.dispatch("a"), h.dispatch("b"), h.dispatch("c"));
    h.succeed("c", c, "plain text");
    h.succeed("b", b, "{\"n\": 2}");
    h.succeed("a", a, "1");
    assert_eq!(h.run.root().result.as_deref(), Some(r#"[1,{"n":2},"plain text",null]"#));
}

#[test]
fn a_wait_completes_with_its_input_at_its_deadline() {
    let tree = seq(
        "s",
        vec![
            json!({"name": "w", "stepType": "Action", "action": {"type": "wait", "seconds": 30}}),
            noop("after"),
        ],
    );
    let mut h = Harness::new(&tree);
    h.start(Some("in"));
    let w = h.idx("w");
    assert_eq!(h.state("w").state(), State::Executing);
    assert_eq!(h.state("w").due_at, Some(NOW + 30_000), "the deadline is in the node's state");
    assert!(h.dispatches.is_empty(), "a wait POSTs nowhere");
    assert_eq!(h.send(Event::Dispatched { node: w, attempt: 1 }), Reply::Skip);
    assert_eq!(h.send(Event::Result { node: w, attempt: 1, result: None }), Reply::NotWaiting);
    assert_eq!(h.send(Event::Timeout { node: w, attempt: 1 }), Reply::Done);
    assert_eq!(h.run.root().state(), State::Complete);
    assert_eq!(h.run.root().result.as_deref(), Some("in"));
}

#[test]
fn a_manual_action_waits_for_a_person_and_fails_at_its_deadline() {
    let manual = |timeout: serde_json::Value| {
        json!({"name": "m", "stepType": "Action",
               "action": {"type": "manual", "callbackTimeoutSeconds": timeout}})
    };
    let mut h = Harness::new(&manual(json!(600)));
    h.start(Some("order 7"));
    let m = h.idx("m");
    assert_eq!(h.state("m").state(), State::Executing);
    assert_eq!(h.state("m").due_at, Some(NOW + 600_000));
    assert!(h.dispatches.is_empty());
    let approve = Event::Settle { node: m, outcome: Ok(Some("approved".into())) };
    assert_eq!(h.send(approve), Reply::Done);
    assert_eq!(h.run.root().result.as_deref(), Some("approved"));

    let mut h = Harness::new(&manual(json!(600)));
    h.start(None);
    assert_eq!(h.send(Event::Settle { node: m, outcome: Err("rejected".into()) }), Reply::Done);
    assert_eq!(h.run.root().error.as_deref(), Some("rejected"));
    // A redrive waits for a person again, with a new deadline.
    assert_eq!(h.send(Event::Redrive { nodes: vec![m] }), Reply::Done);
    assert_eq!(h.state("m").state(), State::Executing);
    assert_eq!(h.state("m").attempt, 2);

    let mut h = Harness::new(&manual(json!(600)));
    h.start(None);
    assert_eq!(h.send(Event::Timeout { node: m, attempt: 1 }), Reply::Done);
    assert_eq!(h.run.root().error.as_deref(), Some("no decision by hand within 600 s"));

    let mut h = Harness::new(&manual(serde_json::Value::Null));
    h.start(None);
    assert_eq!(h.state("m").due_at, None, "null: a person may take for ever");
}

#[test]
fn a_dry_run_sends_nothing_and_waits_for_no_timer_but_a_person_still_decides() {
    let tree = seq(
        "s",
        vec![
            with_mapper(api("charge"), "function apply(d) { return JSON.parse(d).id; }"),
            json!({"name": "w", "stepType": "Action", "action": {"type": "wait", "seconds": 30}}),
            with_reducer(
                par("p", vec![api("a"), api("b")]),
                "function apply(rs) { return rs.join('+'); }",
            ),
            json!({"name": "m", "stepType": "Action", "action": {"type": "manual"}}),
        ],
    );
    let results = [("charge".to_owned(), r#"{"id": "ch_1"}"#.to_owned()), ("b".into(), "B".into())];
    let mut h = Harness::dry(&tree, aetr_engine::DryRun { results: results.into() });
    h.start(Some("order"));
    assert!(h.dispatches.is_empty(), "no api action is sent");
    assert_eq!(h.state("charge").result.as_deref(), Some(r#"{"id": "ch_1"}"#), "the given result");
    assert_eq!(h.state("charge").output.as_deref(), Some("ch_1"), "mappers run for real");
    assert_eq!(h.state("w").state(), State::Complete, "a wait ends at once");
    assert_eq!(h.state("a").result.as_deref(), Some("ch_1"), "no result given: its input");
    assert_eq!(h.state("p").result.as_deref(), Some("ch_1+B"), "reducers run for real");
    assert_eq!(h.state("m").state(), State::Executing, "a manual action waits for a person");
    assert_eq!(h.run.root().state(), State::Executing);
    let m = h.idx("m");
    assert_eq!(h.send(Event::Settle { node: m, outcome: Ok(Some("ok".into())) }), Reply::Done);
    assert_eq!(h.run.root().state(), State::Complete);
    assert_eq!(h.run.root().result.as_deref(), Some("ok"));
}

/// The dispatches due in `h`, by their node's input.
fn due_by_input(h: &Harness) -> Vec<(String, u32, u32)> {
    let mut due: Vec<(String, u32, u32)> = h
        .dispatches
        .iter()
        .map(|&(node, attempt, _)| {
            (h.run.node(node).input.clone().unwrap_or_default(), node, attempt)
        })
        .collect();
    due.sort();
    due
}

#[test]
fn a_redrive_on_new_definitions_runs_a_maps_failed_instance_again_and_keeps_the_others() {
    let tree = |reducer: &str| {
        let mut m = json!({"name": "m", "stepType": "Map", "children": [api("call")]});
        m["reducer"] = json!({"type": "js", "js": reducer});
        seq("s", vec![m])
    };
    let join = "function apply(rs) { return rs.join(','); }";
    let mut h = Harness::new(&tree(join));
    h.start(Some(r#"["x","y","z"]"#));
    let due = due_by_input(&h);
    assert_eq!(due.len(), 3);
    for (_, node, attempt) in &due {
        assert_eq!(h.send(Event::Dispatched { node: *node, attempt: *attempt }), Reply::Send);
    }
    for (input, node, attempt) in &due {
        let event = match input.as_str() {
            "y" => Event::Failure { node: *node, attempt: *attempt, error: "y broke".into() },
            _ => {
                Event::Result { node: *node, attempt: *attempt, result: Some(input.to_uppercase()) }
            }
        };
        h.send(event);
    }
    assert_eq!(h.run.root().state(), State::Error);
    h.dispatches.clear();

    // The Map's reducer changed: the Map runs again, but only the failed instance is sent.
    let redriven = h.redrive_latest(&tree("function apply(rs) { return rs.join('+'); }"));
    assert_eq!(redriven.kept_instances.len(), 2, "x and z keep their results");
    let due = due_by_input(&h);
    assert_eq!(due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["y"], "only y is sent again");
    let (_, node, attempt) = due[0].clone();
    assert_eq!(h.send(Event::Dispatched { node, attempt }), Reply::Send);
    h.send(Event::Result { node, attempt, result: Some("Y".into()) });
    assert_eq!(h.run.root().result.as_deref(), Some("X+Y+Z"));
}

#[test]
fn a_capped_map_of_instances_that_end_as_they_start_runs_them_all_in_one_event_without_recursing() {
    let n = 20_000;
    let tree = json!({"name": "m", "stepType": "Map", "map": {"maxConcurrency": 5},
                      "reducer": {"type": "js", "js": "function apply(rs) { return rs.length; }"},
                      "children": [noop("each")]});
    let mut h = Harness::new(&tree);
    let items: Vec<usize> = (0..n).collect();
    h.start(Some(&serde_json::to_string(&items).unwrap()));
    assert_eq!(h.run.root().result.as_deref(), Some(n.to_string().as_str()));
}

#[test]
fn instances_under_a_cap_that_end_as_they_start_start_the_next_ones_in_the_same_event() {
    // An inner Map over an empty list, with no reducer to run, ends as it starts.
    let inner = json!({"name": "inner", "stepType": "Map", "reducer": {"type": "no-op"},
                       "children": [api("call")]});
    let tree = json!({"name": "outer", "stepType": "Map", "map": {"maxConcurrency": 1},
                      "children": [inner]});
    let mut h = Harness::new(&tree);
    h.start(Some("[[1], [], [], [2], []]"));
    let first = h.dispatches.remove(0);
    assert_eq!(h.send(Event::Dispatched { node: first.0, attempt: first.1 }), Reply::Send);
    h.send(Event::Result { node: first.0, attempt: first.1, result: None });
    let second = h.dispatches.remove(0);
    assert_eq!(h.run.node(second.0).input.as_deref(), Some("2"), "items 1 and 2 ended at once");
    assert_eq!(h.send(Event::Dispatched { node: second.0, attempt: second.1 }), Reply::Send);
    h.send(Event::Result { node: second.0, attempt: second.1, result: None });
    assert_eq!(h.run.root().state(), State::Complete);
}
