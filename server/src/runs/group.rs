//! Group commit: the work of many runs in one transaction.
//!
//! A run's leader (see [`super::mailbox`]) hands its batch of events to a queue of groups, and
//! so does a start; each waits until its part is committed. A few committers take the queued
//! parts in groups, each group in one transaction whose statements write the rows of all its
//! runs at once: when many runs move at the same time, they share statements and commits
//! instead of each paying for its own. A part that finds a committer free is taken at once, so
//! a lone run waits for nobody.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::Shared;
use crate::metrics::METRICS;
use crate::otel;

/// The most parts in one group.
const MAX_PARTS: usize = 128;
/// The most events in one group (a run's batch may be larger, and is then alone).
const MAX_EVENTS: usize = 1024;

/// What a group is made of: a run's batch of events, or a start.
pub(crate) trait Part: Send + Sized + 'static {
    /// What becomes of a part: what its waiters are answered.
    type Answer: Send;
    /// Why a whole group could not be committed.
    type Error: Send;
    /// How many events it brings.
    fn events(&self) -> usize;
    /// It must be committed alone (a cancel or a redrive, which touch the whole run).
    fn alone(&self) -> bool;
    /// The queue that parts of this kind wait in.
    fn groups(shared: &Shared) -> &Groups<Self>;
    /// Commits a group in one transaction: each part's answer, in order, or an error for the
    /// whole group (nothing of it is written).
    fn commit(
        shared: &Arc<Shared>,
        group: &[Self],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, Self::Error>> + Send;
    /// The answer of a part that failed alone.
    fn failed(&self, shared: &Shared, error: Self::Error) -> Self::Answer;
    /// Answers the part's waiters, and starts the work that its answer made.
    fn answer(self, shared: &Arc<Shared>, answer: Self::Answer);
}

#[derive(Debug)]
pub(crate) struct Groups<P> {
    queue: Mutex<Queue<P>>,
    /// How many groups may be committed at once.
    committers: usize,
}

#[derive(Debug)]
struct Queue<P> {
    waiting: VecDeque<Waiting<P>>,
    /// Committers at work.
    active: usize,
}

/// A part waiting for its group, and whoever waits for it to be committed.
#[derive(Debug)]
struct Waiting<P> {
    part: P,
    done: oneshot::Sender<()>,
}

impl<P: Part> Groups<P> {
    pub fn new(committers: usize) -> Groups<P> {
        let queue = Queue { waiting: VecDeque::new(), active: 0 };
        Groups { queue: Mutex::new(queue), committers: committers.max(1) }
    }

    /// Commits a part in the next group, and returns once it is answered.
    pub async fn commit(&self, shared: &Arc<Shared>, part: P) {
        let (start, committed) = self.enqueue(part);
        if start {
            let shared = Arc::clone(shared);
            shared.clone().spawn(async move { commit_groups::<P>(&shared).await });
        }
        // An error: the committer is gone (it panicked); the part's own answer says so.
        let _ = committed.await;
    }

    /// Queues a part. `true`: a committer is to be started for it (fewer than `committers`
    /// were at work). The receiver hears when the part's group is done.
    fn enqueue(&self, part: P) -> (bool, oneshot::Receiver<()>) {
        let (done, committed) = oneshot::channel();
        let mut queue = self.lock();
        queue.waiting.push_back(Waiting { part, done });
        let start = queue.active < self.committers;
        if start {
            queue.active += 1;
        }
        (start, committed)
    }

    /// The next group; `None` (and the committer stops) when no part waits.
    fn next(&self) -> Option<Vec<Waiting<P>>> {
        let mut queue = self.lock();
        let Some(first) = queue.waiting.pop_front() else {
            queue.active -= 1;
            return None;
        };
        let mut events = first.part.events();
        let mut group = vec![first];
        if group[0].part.alone() {
            return Some(group);
        }
        while group.len() < MAX_PARTS {
            let Some(next) = queue.waiting.front() else { break };
            if next.part.alone() || events + next.part.events() > MAX_EVENTS {
                break;
            }
            events += next.part.events();
            group.extend(queue.waiting.pop_front());
        }
        Some(group)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<P>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Commits groups until no part waits.
async fn commit_groups<P: Part>(shared: &Arc<Shared>) {
    // If this task ends early (a panic), it must not be counted as at work any more, or no
    // committer would be started again once all had failed.
    struct Active<'a, P: Part>(&'a Groups<P>);
    impl<P: Part> Drop for Active<'_, P> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.lock().active -= 1;
            }
        }
    }
    let groups = P::groups(shared);
    let _active = Active(groups);
    while let Some(group) = groups.next() {
        let (parts, done): (Vec<_>, Vec<_>) = group.into_iter().map(|w| (w.part, w.done)).unzip();
        commit_group(shared, parts).await;
        for done in done {
            let _ = done.send(());
        }
    }
}

/// Commits a group and answers its parts. If the group fails, each part is committed again
/// alone, so that one part's trouble (a run's corrupt state, say) fails only its own waiters.
async fn commit_group<P: Part>(shared: &Arc<Shared>, group: Vec<P>) {
    let started = std::time::Instant::now();
    let answers = match P::commit(shared, &group).await {
        Ok(answers) => {
            METRICS.group_commit_runs.observe(group.len() as f64);
            otel::group_commit(group.len(), started.elapsed());
            answers
        }
        Err(e) if group.len() == 1 => vec![group[0].failed(shared, e)],
        Err(_) => {
            for part in group {
                let answer = match P::commit(shared, std::slice::from_ref(&part)).await {
                    Ok(answers) => answers.into_iter().next(),
                    Err(e) => Some(part.failed(shared, e)),
                };
                // No answer (a bug): the part is dropped, and its waiters told so.
                if let Some(answer) = answer {
                    part.answer(shared, answer);
                }
            }
            return;
        }
    };
    for (part, answer) in group.into_iter().zip(answers) {
        part.answer(shared, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part with a number of events, alone or not; it is never committed here.
    #[derive(Debug, PartialEq)]
    struct Events(usize, bool);

    impl Part for Events {
        type Answer = ();
        type Error = ();
        fn events(&self) -> usize {
            self.0
        }
        fn alone(&self) -> bool {
            self.1
        }
        fn groups(_: &Shared) -> &Groups<Events> {
            unreachable!("the queue alone is tested")
        }
        async fn commit(_: &Arc<Shared>, _: &[Events]) -> Result<Vec<()>, ()> {
            unreachable!("the queue alone is tested")
        }
        fn failed(&self, _: &Shared, (): ()) {}
        fn answer(self, _: &Arc<Shared>, (): ()) {}
    }

    /// The sizes of the groups that a committer takes, in order, until none is left.
    fn groups_of(groups: &Groups<Events>) -> Vec<Vec<usize>> {
        std::iter::from_fn(|| groups.next())
            .map(|group| group.into_iter().map(|w| w.part.0).collect())
            .collect()
    }

    #[test]
    fn a_part_starts_a_committer_only_while_fewer_than_the_limit_are_at_work() {
        let groups = Groups::new(2);
        let starts: Vec<bool> = (0..4).map(|_| groups.enqueue(Events(1, false)).0).collect();
        assert_eq!(starts, [true, true, false, false]);
        // The first committer takes all four together; the second finds none left and stops.
        assert_eq!(groups.next().map(|g| g.len()), Some(4));
        assert!(groups.next().is_none());
        assert_eq!(groups.lock().active, 1);
        assert!(groups.next().is_none());
        assert_eq!(groups.lock().active, 0);
        assert!(groups.enqueue(Events(1, false)).0, "an idle queue starts a committer again");
    }

    #[test]
    fn a_group_stops_at_its_limits_and_a_run_wide_part_goes_alone() {
        let groups = Groups::new(1);
        for part in [Events(3, false), Events(2, false), Events(1, true), Events(4, false)] {
            groups.enqueue(part);
        }
        assert_eq!(groups_of(&groups), [vec![3, 2], vec![1], vec![4]]);

        for _ in 0..MAX_PARTS + 5 {
            groups.enqueue(Events(1, false));
        }
        let sizes: Vec<usize> = groups_of(&groups).iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_PARTS, 5]);

        for events in [MAX_EVENTS - 10, 10, 1, MAX_EVENTS + 1, 1] {
            groups.enqueue(Events(events, false));
        }
        let events = groups_of(&groups);
        assert_eq!(events, [vec![MAX_EVENTS - 10, 10], vec![1], vec![MAX_EVENTS + 1], vec![1]]);
    }

    #[test]
    fn waiters_hear_when_their_group_is_done() {
        let groups = Groups::new(1);
        let (_, mut first) = groups.enqueue(Events(1, false));
        let (_, mut second) = groups.enqueue(Events(1, true));
        let group = groups.next().unwrap_or_default();
        assert!(first.try_recv().is_err(), "not done before its group is");
        for waiting in group {
            let _ = waiting.done.send(());
        }
        assert!(first.try_recv().is_ok());
        assert!(second.try_recv().is_err(), "the next group is not done yet");
    }
}
