//! The bounded buffer between the receivers and the batcher.
//!
//! Receivers never wait on it. An access-log event that does not fit is
//! dropped at once (the newest go, as the apiserver's buffered backend does)
//! and counted, so Envoy is never held up by a slow or absent CSE API. A
//! webhook `EventList` is taken whole or not at all
//! ([`Buffer::push_whole`]), so a sender that retries loses nothing. The
//! buffer holds events already serialized, so its byte count is exactly
//! what will be sent.
//!
//! Events without an identity (requests ext_authz answered without one,
//! mostly 401s) may fill only [`UNAUTHENTICATED_SHARE`] of the buffer:
//! anyone who can reach Envoy can produce them at will, and they must not
//! crowd out the events of authenticated requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::{DropReason, Metrics, Source};

/// One serialized audit event and when it arrived.
#[derive(Debug, Clone)]
pub struct Item {
    pub json: Box<str>,
    pub arrived: Instant,
}

/// Events without an identity may use at most 1/`UNAUTHENTICATED_SHARE`
/// of the buffer's events and of its bytes.
pub const UNAUTHENTICATED_SHARE: usize = 10;

/// Which part of the buffer an event may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The request carried an identity (or came from the apiserver): the
    /// whole buffer.
    Authenticated,
    /// No identity: at most 1/[`UNAUTHENTICATED_SHARE`] of the buffer.
    Unauthenticated,
}

/// Why [`Buffer::push_whole`] took nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not enough room now; there may be once the batcher has sent some.
    Full,
    /// More events or bytes than the empty buffer holds: it never fits.
    TooLarge {
        events: usize,
        bytes: usize,
        max_events: usize,
        max_bytes: usize,
    },
    /// Closed for shutdown.
    Closed,
}

/// How a push went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub accepted: usize,
    pub dropped: usize,
}

/// What the batcher should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Enough events, enough bytes, an old enough event, or a drain.
    Flush,
    /// Closed and empty: nothing more will come.
    Done,
}

/// A bounded FIFO of serialized events.
#[derive(Debug)]
pub struct Buffer {
    inner: Mutex<Inner>,
    notify: Notify,
    max_events: usize,
    max_bytes: usize,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Slot>,
    bytes: usize,
    /// Events and bytes of the queue under [`Budget::Unauthenticated`].
    unauthenticated: usize,
    unauthenticated_bytes: usize,
    closed: bool,
}

#[derive(Debug)]
struct Slot {
    item: Item,
    budget: Budget,
}

impl Inner {
    fn push_back(&mut self, item: Item, budget: Budget) {
        self.bytes += item.json.len();
        if budget == Budget::Unauthenticated {
            self.unauthenticated += 1;
            self.unauthenticated_bytes += item.json.len();
        }
        self.queue.push_back(Slot { item, budget });
    }

    fn pop_front(&mut self) -> Option<Item> {
        let Slot { item, budget } = self.queue.pop_front()?;
        self.bytes -= item.json.len();
        if budget == Budget::Unauthenticated {
            self.unauthenticated -= 1;
            self.unauthenticated_bytes -= item.json.len();
        }
        Some(item)
    }
}

impl Buffer {
    /// A buffer of at most `max_events` events and `max_bytes` bytes.
    pub fn new(max_events: usize, max_bytes: usize, metrics: Arc<Metrics>) -> Buffer {
        Buffer {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_events,
            max_bytes,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the queue half
        // updated (every update is a push or pop plus a counter), so a
        // poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends events in order; those that do not fit are dropped and
    /// counted. After [`Buffer::close`] nothing is accepted.
    pub fn push(&self, source: Source, events: impl IntoIterator<Item = Box<str>>) -> Pushed {
        self.push_arrived(source, events, Instant::now())
    }

    /// Like [`Buffer::push`], within `budget`: events over the
    /// unauthenticated budget are dropped and counted under their own
    /// reason even while the buffer has room.
    pub fn push_in(
        &self,
        source: Source,
        budget: Budget,
        events: impl IntoIterator<Item = Box<str>>,
    ) -> Pushed {
        self.push_budget(source, budget, events, Instant::now())
    }

    /// Like [`Buffer::push`], for events that arrived earlier (reloaded
    /// from the spool): their batch is due as if they had waited here.
    pub fn push_arrived(
        &self,
        source: Source,
        events: impl IntoIterator<Item = Box<str>>,
        arrived: Instant,
    ) -> Pushed {
        self.push_budget(source, Budget::Authenticated, events, arrived)
    }

    fn push_budget(
        &self,
        source: Source,
        budget: Budget,
        events: impl IntoIterator<Item = Box<str>>,
        arrived: Instant,
    ) -> Pushed {
        let mut accepted = 0;
        let mut full = 0;
        let mut over_budget = 0;
        let mut closed = 0;
        {
            let mut inner = self.lock();
            for json in events {
                if inner.closed {
                    closed += 1;
                } else if !self.fits(&inner, 1, json.len()) {
                    full += 1;
                } else if budget == Budget::Unauthenticated
                    && !self.fits_unauthenticated(&inner, json.len())
                {
                    over_budget += 1;
                } else {
                    inner.push_back(Item { json, arrived }, budget);
                    accepted += 1;
                }
            }
            self.set_gauges(&inner);
        }
        self.metrics
            .received(source, (accepted + full + over_budget + closed) as u64);
        self.metrics.dropped(DropReason::BufferFull, full as u64);
        self.metrics
            .dropped(DropReason::UnauthenticatedBudget, over_budget as u64);
        self.metrics.dropped(DropReason::Shutdown, closed as u64);
        if accepted > 0 {
            self.notify.notify_one();
        }
        Pushed {
            accepted,
            dropped: full + over_budget + closed,
        }
    }

    /// Appends all of `events` or, if they do not all fit, none of them,
    /// and counts nothing then: the sender is told to retry, so nothing is
    /// lost.
    pub fn push_whole(&self, source: Source, events: Vec<Box<str>>) -> Result<usize, Refused> {
        let n = events.len();
        let bytes: usize = events.iter().map(|e| e.len()).sum();
        {
            let mut inner = self.lock();
            if inner.closed {
                return Err(Refused::Closed);
            }
            if n > self.max_events || bytes > self.max_bytes {
                return Err(Refused::TooLarge {
                    events: n,
                    bytes,
                    max_events: self.max_events,
                    max_bytes: self.max_bytes,
                });
            }
            if !self.fits(&inner, n, bytes) {
                return Err(Refused::Full);
            }
            let arrived = Instant::now();
            for json in events {
                inner.push_back(Item { json, arrived }, Budget::Authenticated);
            }
            self.set_gauges(&inner);
        }
        self.metrics.received(source, n as u64);
        if n > 0 {
            self.notify.notify_one();
        }
        Ok(n)
    }

    /// Appends the longest leading run of `events` that fits and returns
    /// how many that was; the rest are left to the caller, not dropped.
    /// Counted as received from `source` are only those taken.
    pub fn push_leading(&self, source: Source, events: &[Box<str>], arrived: Instant) -> usize {
        let mut accepted = 0;
        {
            let mut inner = self.lock();
            if inner.closed {
                return 0;
            }
            for json in events {
                if !self.fits(&inner, 1, json.len()) {
                    break;
                }
                inner.push_back(
                    Item {
                        json: json.clone(),
                        arrived,
                    },
                    Budget::Authenticated,
                );
                accepted += 1;
            }
            self.set_gauges(&inner);
        }
        self.metrics.received(source, accepted as u64);
        if accepted > 0 {
            self.notify.notify_one();
        }
        accepted
    }

    fn fits(&self, inner: &Inner, events: usize, bytes: usize) -> bool {
        inner.queue.len() + events <= self.max_events && inner.bytes + bytes <= self.max_bytes
    }

    fn fits_unauthenticated(&self, inner: &Inner, bytes: usize) -> bool {
        let max_events = (self.max_events / UNAUTHENTICATED_SHARE).max(1);
        let max_bytes = (self.max_bytes / UNAUTHENTICATED_SHARE).max(1);
        inner.unauthenticated < max_events && inner.unauthenticated_bytes + bytes <= max_bytes
    }

    /// Puts events back at the front, in order, ignoring the limits: they
    /// were already counted as accepted once.
    pub fn requeue_front(&self, items: Vec<Item>) {
        let mut inner = self.lock();
        for item in items.into_iter().rev() {
            inner.bytes += item.json.len();
            inner.queue.push_front(Slot {
                item,
                budget: Budget::Authenticated,
            });
        }
        self.set_gauges(&inner);
    }

    fn set_gauges(&self, inner: &Inner) {
        self.metrics.buffer_events.set(inner.queue.len() as i64);
        self.metrics.buffer_bytes.set(inner.bytes as i64);
    }

    /// Stops accepting events; what is buffered stays to be drained.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// Whether [`Buffer::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Number of buffered events.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until a batch should be cut: `batch_events` events or
    /// `batch_bytes` bytes are waiting, the oldest has waited `max_wait`, or
    /// the buffer is closed (drain: flush without waiting).
    pub async fn ready(
        &self,
        batch_events: usize,
        batch_bytes: usize,
        max_wait: Duration,
    ) -> Ready {
        loop {
            let notified = self.notify.notified();
            let deadline = {
                let inner = self.lock();
                match inner.queue.front() {
                    None if inner.closed => return Ready::Done,
                    None => None,
                    Some(_) if inner.closed => return Ready::Flush,
                    Some(_) if inner.queue.len() >= batch_events || inner.bytes >= batch_bytes => {
                        return Ready::Flush;
                    }
                    Some(oldest) => Some(oldest.item.arrived + max_wait),
                }
            };
            match deadline {
                Some(deadline) if deadline <= Instant::now() => return Ready::Flush,
                Some(deadline) => {
                    tokio::select! {
                        () = notified => {},
                        () = tokio::time::sleep_until(deadline) => return Ready::Flush,
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Takes up to `max_events` events totalling at most `max_bytes` bytes
    /// from the front (always at least one if any is waiting, so an event
    /// larger than the ceiling still leaves, alone).
    pub fn take(&self, max_events: usize, max_bytes: usize) -> Vec<Item> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max_events {
            let Some(front) = inner.queue.front() else {
                break;
            };
            let len = front.item.json.len() + 1;
            if !out.is_empty() && bytes + len > max_bytes {
                break;
            }
            let Some(item) = inner.pop_front() else {
                break;
            };
            bytes += len;
            out.push(item);
        }
        self.set_gauges(&inner);
        out
    }

    /// Empties the buffer (for the spool at shutdown).
    pub fn take_all(&self) -> Vec<Item> {
        let mut inner = self.lock();
        inner.bytes = 0;
        inner.unauthenticated = 0;
        inner.unauthenticated_bytes = 0;
        let out = inner.queue.drain(..).map(|slot| slot.item).collect();
        self.set_gauges(&inner);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn buffer(max_events: usize, max_bytes: usize) -> Buffer {
        Buffer::new(
            max_events,
            max_bytes,
            Arc::new(Metrics::new(&mut Registry::default())),
        )
    }

    fn ev(s: &str) -> Box<str> {
        s.into()
    }

    #[test]
    fn drops_the_newest_when_full_and_counts_them() {
        let b = buffer(3, 1000);
        let p = b.push(Source::Webhook, ["1", "2", "3", "4", "5"].map(ev));
        assert_eq!(
            p,
            Pushed {
                accepted: 3,
                dropped: 2
            }
        );
        assert_eq!(b.metrics.dropped_count(DropReason::BufferFull), 2);
        let got: Vec<_> = b.take(10, 1000).into_iter().map(|i| i.json).collect();
        assert_eq!(got, ["1", "2", "3"].map(ev));
    }

    #[test]
    fn byte_cap_bounds_the_buffer() {
        let b = buffer(100, 10);
        let p = b.push(Source::Envoy, ["aaaa", "bbbb", "cccc"].map(ev));
        assert_eq!(
            p,
            Pushed {
                accepted: 2,
                dropped: 1
            }
        );
    }

    #[test]
    fn take_respects_the_byte_ceiling_but_always_takes_one() {
        let b = buffer(100, 10_000);
        b.push(Source::Webhook, ["aaaaaaaaaa", "bb", "cc"].map(ev));
        assert_eq!(b.take(10, 4).len(), 1);
        assert_eq!(b.take(10, 6).len(), 2);
    }

    #[test]
    fn closed_buffer_refuses_and_requeue_keeps_order() {
        let b = buffer(2, 100);
        b.push(Source::Webhook, ["1", "2"].map(ev));
        let taken = b.take(2, 100);
        b.push(Source::Webhook, ["3"].map(ev));
        b.requeue_front(taken);
        let got: Vec<_> = b.take(10, 100).into_iter().map(|i| i.json).collect();
        assert_eq!(got, ["1", "2", "3"].map(ev));
        b.close();
        assert_eq!(b.push(Source::Webhook, ["4"].map(ev)).dropped, 1);
        assert_eq!(b.metrics.dropped_count(DropReason::Shutdown), 1);
        assert_eq!(b.metrics.dropped_count(DropReason::BufferFull), 0);
    }

    #[test]
    fn unauthenticated_events_have_a_budget_of_their_own() {
        let b = buffer(20, 1000);
        let noise = b.push_in(Source::Envoy, Budget::Unauthenticated, ["n"; 10].map(ev));
        assert_eq!(
            noise,
            Pushed {
                accepted: 2,
                dropped: 8
            }
        );
        assert_eq!(
            b.metrics.dropped_count(DropReason::UnauthenticatedBudget),
            8
        );
        let real = b.push_in(Source::Envoy, Budget::Authenticated, ["a"; 18].map(ev));
        assert_eq!(real.accepted, 18);
        assert_eq!(b.metrics.dropped_count(DropReason::BufferFull), 0);
        // The budget frees up as its events leave.
        b.take(2, 1000);
        assert_eq!(
            b.push_in(Source::Envoy, Budget::Unauthenticated, ["n"].map(ev))
                .accepted,
            1
        );
    }

    #[test]
    fn push_whole_takes_all_or_nothing_and_counts_nothing_refused() {
        let b = buffer(5, 1000);
        assert_eq!(
            b.push_whole(Source::Webhook, ["1", "2", "3"].map(ev).into()),
            Ok(3)
        );
        assert_eq!(
            b.push_whole(Source::Webhook, ["4", "5", "6"].map(ev).into()),
            Err(Refused::Full)
        );
        assert_eq!(b.len(), 3);
        assert_eq!(b.metrics.dropped_count(DropReason::BufferFull), 0);
        assert!(matches!(
            b.push_whole(Source::Webhook, ["x"; 6].map(ev).into()),
            Err(Refused::TooLarge { events: 6, .. })
        ));
        b.close();
        assert_eq!(
            b.push_whole(Source::Webhook, ["7"].map(ev).into()),
            Err(Refused::Closed)
        );
    }

    #[test]
    fn push_leading_stops_at_the_first_that_does_not_fit() {
        let b = buffer(100, 10);
        let events = ["aaaa", "bbbb", "cccc", "d"].map(ev);
        assert_eq!(b.push_leading(Source::Spool, &events, Instant::now()), 2);
        assert_eq!(b.metrics.dropped_count(DropReason::BufferFull), 0);
        assert_eq!(b.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_flushes_on_size_age_or_close() {
        let b = buffer(100, 10_000);
        b.push(Source::Webhook, ["1", "2"].map(ev));
        assert_eq!(
            b.ready(2, 10_000, Duration::from_secs(300)).await,
            Ready::Flush
        );

        let start = Instant::now();
        assert_eq!(
            b.ready(5, 10_000, Duration::from_secs(300)).await,
            Ready::Flush
        );
        assert_eq!(start.elapsed(), Duration::from_secs(300));

        b.take(10, 10_000);
        b.close();
        assert_eq!(
            b.ready(5, 10_000, Duration::from_secs(300)).await,
            Ready::Done
        );
    }
}
