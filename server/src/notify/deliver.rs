//! Delivering webhook messages: every server claims due messages from the outbox, POSTs each
//! with the Standard Webhooks headers, and records the try in the message's row and in its
//! run's history (`notified`). A 2xx delivers it; anything else is tried again after an
//! exponential backoff with jitter, until 24 hours after the run ended. A claim leases the
//! message past the try's timeout, so a server that dies mid-try leaves it to be tried again.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dispatch::request::{root_cause, shown_url};
use crate::guard::{Refusal, Rules};
use crate::store::events::{self, NewEvent};
use crate::store::notify::{self, Due, Settled};
use crate::store::time::now_ms;

/// How long one try may take.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed message is tried again by any server once this has passed without a record.
const LEASE_MS: i64 = 15_000;
/// The most tries in flight on one server.
const IN_FLIGHT: usize = 32;
/// How often a server looks for due messages when nothing woke it.
const POLL: Duration = Duration::from_secs(1);
/// How long a server waits after a run's end woke it, so that one look serves the runs that
/// end meanwhile.
const COALESCE: Duration = Duration::from_millis(20);
/// The backoff before the second try, doubled for each try after it, up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 30 * 60 * 1_000;
/// How much of an answer's body the history quotes.
const QUOTED_CHARS: usize = 200;

/// What the deliverer needs.
#[derive(Debug, Clone)]
pub struct Deliverer {
    pub pool: Pool,
    /// A client with the action URL rules in its resolver (see [`crate::guard::Egress`]).
    pub http: reqwest::Client,
    pub rules: Arc<Rules>,
    /// Woken when a run ends on this server or another.
    pub wake: Arc<Notify>,
}

impl Deliverer {
    /// Delivers due messages until `stopping`.
    pub fn start(self, stopping: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            loop {
                let free = slots.available_permits();
                if free == 0 {
                    tokio::select! {
                        () = stopping.cancelled() => return,
                        permit = Arc::clone(&slots).acquire_owned() => drop(permit),
                    }
                    continue;
                }
                let claimed = self.claim(&slots, free).await.unwrap_or_else(|e| {
                    tracing::warn!(error = format!("{e:#}"), "cannot claim webhook messages");
                    0
                });
                if claimed == free {
                    continue; // more may be due
                }
                tokio::select! {
                    () = stopping.cancelled() => return,
                    // Runs end by the thousand, most without a webhook: one look for a
                    // moment's worth of them.
                    () = self.wake.notified() => tokio::time::sleep(COALESCE).await,
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        })
    }

    /// Claims up to `free` due messages and starts a try of each, each holding a slot.
    /// Returns how many.
    async fn claim(&self, slots: &Arc<Semaphore>, free: usize) -> anyhow::Result<usize> {
        let now = now_ms();
        let client = self.pool.get().await?;
        let due = notify::claim(&client, now, now + LEASE_MS, free as i64).await?;
        drop(client);
        let n = due.len();
        for message in due {
            let slot = Arc::clone(slots).try_acquire_owned()?;
            let this = self.clone();
            tokio::spawn(async move {
                this.try_once(message).await;
                drop(slot);
            });
        }
        Ok(n)
    }

    /// One try of a message, recorded.
    async fn try_once(&self, due: Due) {
        let sent_at = now_ms();
        let outcome = self.post(&due, sent_at / 1000).await;
        let settled = match &outcome {
            Ok(_) => Settled::Delivered,
            Err(_) => {
                let next = sent_at + backoff_ms(due.try_no, rand::random::<f64>());
                if next >= due.give_up_at {
                    Settled::Failed
                } else {
                    Settled::Again(next)
                }
            }
        };
        let mut detail =
            json!({"messageId": due.id, "url": shown_url(&due.target.url), "try": due.try_no});
        match &outcome {
            Ok(status) | Err(Failure { status: Some(status), .. }) => {
                detail["status"] = json!(status)
            }
            Err(_) => {}
        }
        if let Err(failure) = &outcome {
            detail["error"] = json!(failure.error);
        }
        detail["state"] = json!(settled.state());
        if let Settled::Again(at) = settled {
            detail["nextAt"] = json!(at);
        }
        let event = NewEvent {
            kind: "notified",
            idx: None,
            attempt: u32::try_from(due.try_no).ok(),
            detail: Some(detail),
            changes: Vec::new(),
        };
        let record = async {
            let client = self.pool.get().await?;
            // In one round trip: the message's row and the run's history.
            let history = [(due.run, std::slice::from_ref(&event))];
            futures_util::try_join!(
                notify::settle(&client, &due, settled),
                events::insert(&client, &history, now_ms())
            )
            .map(drop)
        };
        match record.await {
            Ok(()) => match (&outcome, settled) {
                (Ok(_), _) => {
                    tracing::info!(run = %due.run, message = %due.id, try_no = due.try_no, "webhook delivered")
                }
                (Err(f), Settled::Failed) => {
                    tracing::warn!(run = %due.run, message = %due.id, try_no = due.try_no, error = %f.error, "webhook not delivered within 24 hours; no more tries")
                }
                (Err(f), _) => {
                    tracing::info!(run = %due.run, message = %due.id, try_no = due.try_no, error = %f.error, "webhook try failed; it is tried again")
                }
            },
            // The lease runs out and another try is made: at least once.
            Err(e) => {
                tracing::warn!(run = %due.run, message = %due.id, error = format!("{e:#}"), "cannot record a webhook try")
            }
        }
    }

    /// POSTs the message: its status if it was a 2xx.
    async fn post(&self, due: &Due, timestamp: i64) -> Result<u16, Failure> {
        let target = &due.target;
        let shown = shown_url(&target.url);
        let url = url::Url::parse(&target.url)
            .map_err(|e| Failure::new(format!("{shown} is not a URL: {e}")))?;
        if let Err(refusal) = self.rules.check_url(&url) {
            return Err(Failure::new(format!("POST {shown} {refusal}")));
        }
        let mut request = self.http.post(url).timeout(TRY_TIMEOUT);
        for (name, value) in &target.headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
            {
                request = request.header(name, value);
            }
        }
        request = request
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &due.id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(signature) = target.signature(&due.id, timestamp, &due.body) {
            request = request.header("webhook-signature", signature);
        }
        let response = request.body(due.body.clone()).send().await.map_err(|e| {
            if let Some(refusal) = Refusal::in_chain(&e) {
                return Failure::new(format!("POST {shown} {refusal}"));
            }
            let why = if e.is_timeout() {
                format!("no answer within {} s", TRY_TIMEOUT.as_secs())
            } else {
                root_cause(&e)
            };
            Failure::new(format!("POST {shown} failed: {why}"))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let body = response.text().await.unwrap_or_default();
        let quoted: String = body.trim().chars().take(QUOTED_CHARS).collect();
        Err(Failure {
            error: format!(
                "POST {shown} answered {status}{}",
                if quoted.is_empty() { String::new() } else { format!(": {quoted}") }
            ),
            status: Some(status.as_u16()),
        })
    }
}

/// A try that did not deliver.
#[derive(Debug)]
struct Failure {
    error: String,
    status: Option<u16>,
}

impl Failure {
    fn new(error: String) -> Failure {
        Failure { error, status: None }
    }
}

/// The wait after try `try_no` (from 1): exponential, capped, with "equal jitter" (half of it
/// fixed, half drawn from `jitter` in `[0, 1)`), so that messages that failed together spread
/// out but none is retried at once.
pub fn backoff_ms(try_no: i32, jitter: f64) -> i64 {
    let exp = u32::try_from(try_no.saturating_sub(1)).unwrap_or(0).min(30);
    let ceiling = FIRST_BACKOFF_MS.saturating_mul(1 << exp).min(MAX_BACKOFF_MS);
    ceiling / 2 + (ceiling as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap_with_half_of_it_jittered() {
        assert_eq!(backoff_ms(1, 0.0), 500);
        assert_eq!(backoff_ms(1, 0.999), 999);
        assert_eq!(backoff_ms(3, 0.0), 2_000);
        assert_eq!(backoff_ms(40, 0.0), MAX_BACKOFF_MS / 2);
        // Half an hour of doubling, then a try every 15 to 30 minutes: about 75 in 24 hours.
        let within = |tries: i32| (1..tries).map(|t| backoff_ms(t, 0.5)).sum::<i64>();
        let day = 24 * 3_600 * 1_000;
        assert!(within(70) < day && within(80) > day, "{} {}", within(70), within(80));
    }
}
