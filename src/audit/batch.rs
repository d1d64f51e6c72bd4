//! The batcher: cuts batches from the buffer and delivers each one to the
//! CSE API, retrying until it is accepted, refused for good, or the
//! shutdown grace period runs out.
//!
//! Batches are sent one at a time, so events reach the API in the order
//! they were buffered and a retry never overtakes a newer batch. While a
//! batch is being retried, new events wait in the bounded buffer.

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::time::Instant;

use super::buffer::{Buffer, Item, Ready};
use super::cse::{BatchMeta, CseClient, ENVELOPE_RESERVE, PostError, batch_body};
use super::metrics::{DropReason, Metrics, RetryReason};
use super::retry::{Backoff, TokenBucket, Verdict, classify};

/// Batching and retry settings.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub max_events: usize,
    pub max_wait: Duration,
    /// Ceiling of a batch body, in bytes.
    pub max_bytes: usize,
    pub throttle_qps: f64,
    pub throttle_burst: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// Set once shutdown starts: the instant after which retrying stops.
pub type Deadline = watch::Receiver<Option<Instant>>;

/// Delivers batches until the buffer is closed and empty. Returns the
/// events still undelivered when the deadline passed (for the spool).
pub async fn run(
    buffer: Arc<Buffer>,
    client: Arc<CseClient>,
    metrics: Arc<Metrics>,
    config: BatchConfig,
    deadline: Deadline,
) -> Vec<Item> {
    let mut throttle = TokenBucket::new(config.throttle_qps, config.throttle_burst);
    let mut rng = StdRng::from_os_rng();
    let payload_bytes = config.max_bytes.saturating_sub(ENVELOPE_RESERVE).max(1);
    loop {
        match buffer
            .ready(config.max_events, payload_bytes, config.max_wait)
            .await
        {
            Ready::Done => return Vec::new(),
            Ready::Flush => {}
        }
        tokio::select! {
            () = throttle.take() => {},
            () = passed(deadline.clone()) => return buffer.take_all(),
        }
        let items = buffer.take(config.max_events, payload_bytes);
        if items.is_empty() {
            continue;
        }
        if let Err(Abandoned) =
            deliver(&items, &client, &metrics, &config, &deadline, &mut rng).await
        {
            let mut rest = items;
            rest.extend(buffer.take_all());
            return rest;
        }
    }
}

/// The deadline passed while the batch was still undelivered.
#[derive(Debug)]
struct Abandoned;

async fn deliver(
    items: &[Item],
    client: &CseClient,
    metrics: &Metrics,
    config: &BatchConfig,
    deadline: &Deadline,
    rng: &mut StdRng,
) -> Result<(), Abandoned> {
    let batch_id = uuid::Uuid::new_v4().to_string();
    let created_at_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let body = bytes::Bytes::from(batch_body(
        &BatchMeta {
            service_name: &client.config().service_name,
            batch_id: &batch_id,
            created_at_ms,
        },
        items,
    ));
    let n = items.len() as u64;
    let started = Instant::now();
    let mut backoff = Backoff::new(config.initial_backoff, config.max_backoff);
    let mut reauthenticated = false;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let outcome = tokio::select! {
            r = client.post(body.clone()) => r,
            () = passed(deadline.clone()) => return Err(Abandoned),
        };
        match outcome {
            Ok(answer) => match classify(answer.status) {
                Verdict::Delivered => {
                    metrics.events_sent.inc_by(n);
                    metrics.batches_sent.inc();
                    metrics
                        .send_seconds
                        .observe(started.elapsed().as_secs_f64());
                    tracing::debug!(batch_id, events = n, attempt, "batch delivered");
                    return Ok(());
                }
                Verdict::Reauthenticate => {
                    metrics.retried(RetryReason::Unauthorized);
                    client.invalidate_token().await;
                    tracing::warn!(
                        batch_id,
                        attempt,
                        "CSE API refused the access token, renewing it"
                    );
                    if !reauthenticated {
                        reauthenticated = true;
                        continue;
                    }
                }
                Verdict::Retry => {
                    metrics.retried(RetryReason::Status);
                    tracing::warn!(
                        batch_id,
                        attempt,
                        status = answer.status,
                        message = %answer.message,
                        "CSE API did not accept the batch, will retry"
                    );
                }
                Verdict::Reject => {
                    metrics.dropped(DropReason::Rejected, n);
                    tracing::error!(
                        batch_id,
                        events = n,
                        status = answer.status,
                        message = %answer.message,
                        "CSE API refused the batch, dropping it"
                    );
                    return Ok(());
                }
            },
            Err(PostError::Token(e)) => {
                metrics.retried(RetryReason::Token);
                tracing::warn!(batch_id, attempt, error = %e, "cannot obtain a CSE access token, will retry");
            }
            Err(PostError::Transport(e)) => {
                metrics.retried(RetryReason::Transport);
                tracing::warn!(batch_id, attempt, error = %e, "cannot reach the CSE API, will retry");
            }
        }
        let delay = backoff.next_delay(rng);
        tokio::select! {
            () = tokio::time::sleep(delay) => {},
            () = passed(deadline.clone()) => return Err(Abandoned),
        }
    }
}

/// Completes once a deadline is set and reached; never before.
async fn passed(mut deadline: Deadline) {
    loop {
        let current = *deadline.borrow_and_update();
        match current {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                return;
            }
            None => {
                if deadline.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
