//! The one way into the buffer for both receivers: encode → truncate →
//! count → push. Whatever a receiver hands over is either in the buffer or
//! counted as dropped with its reason, here and nowhere else.
//!
//! [`Intake::encode`] has no side effects, so a receiver that answers for a
//! request as a whole (the webhook) can still refuse it after seeing the
//! encoded events; [`Intake::push`] then counts and buffers them.

use std::sync::Arc;

use super::buffer::{Budget, Buffer, Refused};
use super::event::Event;
use super::metrics::{DropReason, Metrics, Source};
use super::truncate::{EncodeError, Limits, encode};

/// Encodes, counts and buffers the events of the receivers.
#[derive(Debug, Clone)]
pub struct Intake {
    buffer: Arc<Buffer>,
    metrics: Arc<Metrics>,
    limits: Limits,
}

/// Events encoded for the buffer, not yet counted or pushed.
#[derive(Debug, Default)]
pub struct Encoded {
    json: Vec<Box<str>>,
    truncated: u64,
    too_large: u64,
    unserializable: Vec<(usize, EncodeError)>,
}

impl Encoded {
    /// The first event (by position) that could not be serialized at all.
    pub fn first_unserializable(&self) -> Option<&(usize, EncodeError)> {
        self.unserializable.first()
    }
}

/// What became of the events handed to [`Intake::push`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Now in the buffer.
    pub accepted: usize,
    /// Dropped (too large, unserializable, buffer full or closed), each
    /// counted under its reason.
    pub dropped: u64,
}

impl Intake {
    /// An intake into `buffer` with the truncation policy `limits`.
    pub fn new(buffer: Arc<Buffer>, metrics: Arc<Metrics>, limits: Limits) -> Intake {
        Intake {
            buffer,
            metrics,
            limits,
        }
    }

    /// Whether the buffer has closed for shutdown; pushed events would be
    /// dropped.
    pub fn is_closed(&self) -> bool {
        self.buffer.is_closed()
    }

    /// Encodes and, where the limits say so, truncates `events`. Events too
    /// large even after truncation are left out and remembered for
    /// counting.
    pub fn encode(&self, events: impl IntoIterator<Item = Event>) -> Encoded {
        let events = events.into_iter();
        let mut out = Encoded {
            json: Vec::with_capacity(events.size_hint().0),
            ..Encoded::default()
        };
        for (item, event) in events.enumerate() {
            match encode(event, self.limits) {
                Ok(e) => {
                    out.truncated += u64::from(e.truncated);
                    out.json.push(e.json);
                }
                Err(EncodeError::TooLarge { size, max }) => {
                    out.too_large += 1;
                    tracing::error!(
                        item,
                        size,
                        max,
                        "audit event too large even after truncation, dropping it"
                    );
                }
                Err(e @ EncodeError::Serialize(_)) => out.unserializable.push((item, e)),
            }
        }
        out
    }

    /// Counts `encoded` as received from `source` and pushes it into the
    /// buffer. Unserializable events count as too large, as no smaller
    /// form of them exists either.
    pub fn push(&self, source: Source, encoded: Encoded) -> Outcome {
        self.push_in(source, Budget::Authenticated, encoded)
    }

    /// [`Intake::push`] within `budget` (see [`Budget`]).
    pub fn push_in(&self, source: Source, budget: Budget, encoded: Encoded) -> Outcome {
        let too_large = self.count_encoded(source, &encoded);
        let pushed = self.buffer.push_in(source, budget, encoded.json);
        if pushed.dropped > 0 {
            tracing::warn!(
                source = source.code(),
                dropped = pushed.dropped,
                accepted = pushed.accepted,
                "audit buffer full, dropping the newest events"
            );
        }
        Outcome {
            accepted: pushed.accepted,
            dropped: pushed.dropped as u64 + too_large,
        }
    }

    /// Pushes all of `encoded` or nothing. When refused, nothing is
    /// counted, so the sender's retry is counted once, when accepted.
    pub fn push_whole(&self, source: Source, mut encoded: Encoded) -> Result<Outcome, Refused> {
        let accepted = self
            .buffer
            .push_whole(source, std::mem::take(&mut encoded.json))?;
        Ok(Outcome {
            accepted,
            dropped: self.count_encoded(source, &encoded),
        })
    }

    /// Counts what encoding truncated or dropped; returns the number
    /// dropped.
    fn count_encoded(&self, source: Source, encoded: &Encoded) -> u64 {
        for (item, e) in &encoded.unserializable {
            tracing::error!(item, error = %e, source = source.code(), "audit event dropped");
        }
        let too_large = encoded.too_large + encoded.unserializable.len() as u64;
        self.metrics.truncated.inc_by(encoded.truncated);
        self.metrics.received(source, too_large);
        self.metrics.dropped(DropReason::TooLarge, too_large);
        too_large
    }

    /// [`Intake::encode`] then [`Intake::push`].
    pub fn accept(&self, source: Source, events: impl IntoIterator<Item = Event>) -> Outcome {
        self.push(source, self.encode(events))
    }

    /// [`Intake::encode`] then [`Intake::push_in`].
    pub fn accept_in(
        &self,
        source: Source,
        budget: Budget,
        events: impl IntoIterator<Item = Event>,
    ) -> Outcome {
        self.push_in(source, budget, self.encode(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn event(id: &str, annotation_bytes: usize) -> Event {
        let mut ev: Event = serde_json::from_str(&format!(
            r#"{{"level":"Metadata","auditID":"{id}","stage":"ResponseComplete","stageTimestamp":"t"}}"#
        ))
        .unwrap();
        if annotation_bytes > 0 {
            ev.annotations
                .insert("big".into(), "a".repeat(annotation_bytes));
        }
        ev
    }

    fn intake(max_events: usize) -> (Intake, Arc<Buffer>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new(&mut Registry::default()));
        let buffer = Arc::new(Buffer::new(max_events, 1 << 20, metrics.clone()));
        let limits = Limits {
            enabled: true,
            max_event_bytes: 1000,
        };
        let intake = Intake::new(buffer.clone(), metrics.clone(), limits);
        (intake, buffer, metrics)
    }

    #[test]
    fn every_event_is_buffered_or_dropped_with_a_reason() {
        let (intake, buffer, metrics) = intake(2);
        let outcome = intake.accept(
            Source::Webhook,
            [
                event("a", 0),
                event("big", 2000),
                event("b", 0),
                event("c", 0),
            ],
        );
        assert_eq!(
            outcome,
            Outcome {
                accepted: 2,
                dropped: 2
            }
        );
        assert_eq!(buffer.len(), 2);
        assert_eq!(metrics.dropped_count(DropReason::TooLarge), 1);
        assert_eq!(metrics.dropped_count(DropReason::BufferFull), 1);

        buffer.close();
        assert!(intake.is_closed());
        let outcome = intake.accept(Source::Envoy, [event("d", 0)]);
        assert_eq!(outcome.dropped, 1);
        assert_eq!(metrics.dropped_count(DropReason::Shutdown), 1);
    }

    #[test]
    fn encoding_alone_counts_nothing() {
        let (intake, buffer, metrics) = intake(10);
        let encoded = intake.encode([event("a", 0), event("big", 2000)]);
        assert!(encoded.first_unserializable().is_none());
        drop(encoded);
        assert_eq!(buffer.len(), 0);
        assert_eq!(metrics.dropped_count(DropReason::TooLarge), 0);
    }
}
