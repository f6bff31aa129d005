//! What goes into a run's history for each event that the engine applied.

use aetr_engine::machine::{Event, Outcome, Reply, Work};
use aetr_engine::{Action, StepBody, Tree};
use serde_json::{Map, Value};

use crate::store::events::NewEvent;

/// The history entry for an applied event; `None` for an event that changed nothing and says
/// nothing worth keeping (a stale timer, a skipped dispatch, a refused operator action).
pub fn entry(
    tree: &Tree<'_>,
    event: &Event,
    outcome: &Outcome,
    http_status: Option<u16>,
) -> Option<NewEvent> {
    let mut detail = Map::new();
    let (kind, idx, attempt) = match event {
        Event::Start { .. } => ("started", None, None),
        Event::Dispatched { node, attempt } => {
            if outcome.reply != Reply::Send {
                return None;
            }
            let kind = if outcome.changes.is_empty() { "resent" } else { "dispatched" };
            (kind, Some(*node), Some(*attempt))
        }
        Event::Result { node, attempt, .. } | Event::Failure { node, attempt, .. } => {
            let outcome_name =
                if matches!(event, Event::Result { .. }) { "complete" } else { "fail" };
            detail.insert("outcome".into(), outcome_name.into());
            if let Event::Failure { error, .. } = event {
                detail.insert("error".into(), error.as_str().into());
            }
            if let Some(why) = refusal(outcome.reply) {
                detail.insert("refused".into(), why.into());
            }
            ("callback", Some(*node), Some(*attempt))
        }
        Event::PostFailed { node, attempt, error, .. } => {
            detail.insert("error".into(), error.as_str().into());
            if let Some(status) = http_status {
                detail.insert("httpStatus".into(), status.into());
            }
            ("postFailed", Some(*node), Some(*attempt))
        }
        // A `wait` action's deadline is its end, not a timeout.
        Event::Timeout { node, attempt } => match tree.step(*node).body {
            StepBody::Action { action: Action::Wait { .. } } => ("waited", Some(*node), None),
            _ => ("timedOut", Some(*node), Some(*attempt)),
        },
        Event::Mapped { node, outcome: result } | Event::Reduced { node, outcome: result } => {
            if let Err(e) = result {
                detail.insert("error".into(), e.to_string().into());
            }
            let kind = if matches!(event, Event::Mapped { .. }) { "mapped" } else { "reduced" };
            (kind, Some(*node), None)
        }
        Event::Chosen { node, outcome: result } => {
            match result {
                Ok(choice) => detail.insert("choice".into(), choice.as_deref().into()),
                Err(e) => detail.insert("error".into(), e.to_string().into()),
            };
            ("chosen", Some(*node), None)
        }
        Event::Listed { node, outcome: result } => {
            if let Err(e) = result {
                detail.insert("error".into(), e.to_string().into());
            }
            if let Some(count) = outcome.blocks.first().map(|b| b.block.count) {
                detail.insert("items".into(), count.into());
            }
            ("listed", Some(*node), None)
        }
        Event::Settle { node, outcome: Ok(_) } => ("completedByHand", Some(*node), None),
        Event::Settle { node, outcome: Err(error) } => {
            detail.insert("error".into(), error.as_str().into());
            ("failedByHand", Some(*node), None)
        }
        Event::Redispatch { node } => ("redispatchedByHand", Some(*node), None),
        Event::Cancel => ("cancelled", None, None),
        Event::Redrive { .. } => ("retried", None, None),
    };
    let is_callback = matches!(event, Event::Result { .. } | Event::Failure { .. });
    if !is_callback && !matches!(outcome.reply, Reply::Done | Reply::Send) {
        return None;
    }
    if let Some(retry_at) = outcome.work.iter().find_map(|w| match w {
        Work::Dispatch { node, not_before, .. } if Some(*node) == idx => Some(*not_before),
        _ => None,
    }) {
        if !matches!(event, Event::Start { .. } | Event::Dispatched { .. }) {
            detail.insert("dispatchAt".into(), retry_at.into());
        }
    }
    Some(NewEvent {
        kind,
        idx,
        attempt,
        detail: (!detail.is_empty()).then_some(Value::Object(detail)),
        changes: outcome.changes.iter().map(|c| (c.node, c.from, c.to)).collect(),
    })
}

/// Why a callback was refused (409), as its answer says.
pub fn refusal(reply: Reply) -> Option<&'static str> {
    match reply {
        Reply::Repeat => Some("this attempt's callback was already taken"),
        Reply::Superseded => Some(
            "this attempt was superseded by a newer one (after a callback timeout, a retry of \
             the run or an operator's action); its callback is not taken",
        ),
        Reply::NotWaiting => Some(
            "the node is not waiting for this callback: it was cancelled, has failed, or timed out",
        ),
        Reply::Late => Some("the callback came after its attempt's callback timeout"),
        Reply::Conflict(why) => Some(why),
        _ => None,
    }
}
