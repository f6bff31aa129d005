//! LISTEN for work that other servers leave in the database, and for runs that they end, on a
//! connection of its own (outside the pool), reconnecting with backoff. Each (re)connection
//! wakes the dispatcher, since notifications may have been missed while it was down (a request
//! waiting for a run's end then waits out its own time, and asks again).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::Outbox;
use crate::runs::finished::Finished;
use crate::store::changes::{RUN_FINISHED_CHANNEL, WORK_CHANNEL};

const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub(crate) async fn listen(
    outbox: Arc<Outbox>,
    finished: Arc<Finished>,
    config: tokio_postgres::Config,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match listen_once(&outbox, &finished, &config, &stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "the LISTEN connection is down"
                );
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What a notification says.
enum Heard {
    /// Work waits in the database.
    Work,
    /// A run ended.
    Ended(uuid::Uuid),
}

/// Listens until `stop` (`Ok`) or until the connection fails.
async fn listen_once(
    outbox: &Outbox,
    finished: &Finished,
    config: &tokio_postgres::Config,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notified, mut notifications) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let heard = match n.channel() {
                        RUN_FINISHED_CHANNEL => n.payload().parse().ok().map(Heard::Ended),
                        _ => Some(Heard::Work),
                    };
                    if let Some(heard) = heard {
                        let _ = notified.send(heard);
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {WORK_CHANNEL}; LISTEN {RUN_FINISHED_CHANNEL}")).await?;
    tracing::debug!("listening for work");
    outbox.wake();
    loop {
        tokio::select! {
            got = notifications.recv() => match got {
                Some(Heard::Work) => outbox.wake(),
                // A run ended (on this server or another): its waiters here wake.
                Some(Heard::Ended(run)) => finished.ended(run),
                None => break,
            },
            () = stop.cancelled() => {
                driver.abort();
                return Ok(());
            }
        }
    }
    match driver.await {
        Ok(Err(e)) => Err(e.into()),
        _ => Err(anyhow::anyhow!("the connection closed")),
    }
}
