//! The async forms of the ring's ends: [`Producer::push_async`], [`Consumer::pop_async`], their
//! timeout forms, and [`RingStream`], a `futures_core::Stream` of the values a consumer pops.
//!
//! Each poll runs one step of the blocking form's wait (`SignalWait`, see `awaiting.rs`): the
//! same attempt (`push` or `pop`, which writes or reads a slot and publishes it within the
//! attempt), the same liveness check once per slice. Nothing is claimed across polls, so a
//! future dropped while it waits has pushed nothing (its value is dropped with it) or popped
//! nothing, and its waiter announcement is withdrawn by `SignalWait`'s drop.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::{Consumer, Producer};
use crate::awaiting::SignalWait;
use crate::error::{GetError, PutError, TryGetError};
use crate::signal::{Attempt, Blocked};

/// The deadline `timeout` from now (`None`, no deadline, if it cannot be represented).
fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl<T: Pod> Producer<T> {
    /// The async form of [`push_blocking`](Self::push_blocking): a future that pushes `value`,
    /// waiting for a free slot as long as the consumer is alive (`Disconnected` once it is
    /// gone), for any executor. Dropped before it is ready, it has pushed nothing.
    ///
    /// ```
    /// use ipc_queue::RingBuffer;
    ///
    /// let (mut tx, mut rx) = RingBuffer::<u64>::new(4)?;
    /// futures::executor::block_on(async {
    ///     tx.push_async(7).await?;
    ///     assert_eq!(rx.pop_async().await?, 7);
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "push_blocking")]
    pub async fn push_async(&mut self, value: T) -> Result<(), PutError<T>> {
        self.push_until_async(value, None).await
    }

    /// The async form of [`push_timeout`](Self::push_timeout) (the timeout counts from this
    /// call).
    #[doc(alias = "push_timeout")]
    pub fn push_timeout_async(
        &mut self,
        value: T,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), PutError<T>>> + '_ {
        self.push_until_async(value, deadline(timeout))
    }

    async fn push_until_async(
        &mut self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), PutError<T>> {
        // A ring with room takes the value without the wait's set-up.
        if let Attempt::Ready(r) = self.push_attempt(value) {
            return r;
        }
        let mut wait = SignalWait::new();
        poll_fn(|cx| self.poll_push(value, deadline, &mut wait, cx)).await
    }

    /// One poll of `push_until`'s wait.
    fn poll_push(
        &mut self,
        value: T,
        deadline: Option<Instant>,
        wait: &mut SignalWait,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), PutError<T>>> {
        let parts = self.parts();
        let spin = self.spin;
        let r = wait.poll(
            &parts.state().space,
            deadline,
            spin,
            cx,
            || self.push_attempt(value),
            || super::consumer_present(parts.state(), value),
        );
        r.map(|r| match r {
            Ok(()) => Ok(()),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(PutError::Timeout(value)),
        })
    }
}

impl<T: Pod> Consumer<T> {
    /// The async form of [`pop_blocking`](Self::pop_blocking): a future that pops one value,
    /// waiting as long as the producer is alive; `Disconnected` once the ring is empty and the
    /// producer has gone (dropped, or its process died), as for `pop_blocking`. Dropped before
    /// it is ready, it has popped nothing.
    #[doc(alias = "pop_blocking")]
    pub async fn pop_async(&mut self) -> Result<T, GetError> {
        self.pop_until_async(None).await
    }

    /// The async form of [`pop_timeout`](Self::pop_timeout) (the timeout counts from this
    /// call).
    #[doc(alias = "pop_timeout")]
    pub fn pop_timeout_async(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, GetError>> + '_ {
        self.pop_until_async(deadline(timeout))
    }

    async fn pop_until_async(&mut self, deadline: Option<Instant>) -> Result<T, GetError> {
        // A value there at once is popped without the wait's set-up.
        if let Attempt::Ready(r) = self.pop_attempt() {
            return r;
        }
        let mut wait = SignalWait::new();
        poll_fn(|cx| self.poll_pop(deadline, &mut wait, cx)).await
    }

    /// One poll of `pop_until`'s wait.
    fn poll_pop(
        &mut self,
        deadline: Option<Instant>,
        wait: &mut SignalWait,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, GetError>> {
        let parts = self.parts();
        let spin = self.spin;
        let r = wait.poll(
            &parts.state().items,
            deadline,
            spin,
            cx,
            || self.pop_attempt(),
            || super::producer_present(parts.state()),
        );
        r.map(|r| match r {
            Ok(v) => Ok(v),
            // A last value may have landed between the final attempt and the check.
            Err(Blocked::Failed(GetError::Disconnected)) => self.pop().map_err(|e| match e {
                TryGetError::Empty => GetError::Disconnected,
                e => GetError::from(e),
            }),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(GetError::Timeout),
        })
    }

    /// The values this consumer pops, as a `futures_core::Stream` that ends once the producer
    /// has gone and the ring is empty; see [`RingStream`].
    ///
    /// ```
    /// use futures::StreamExt;
    /// use ipc_queue::RingBuffer;
    ///
    /// let (mut tx, mut rx) = RingBuffer::<u32>::new(8)?;
    /// tx.push_slice(&[0, 1, 2])?;
    /// drop(tx); // the producer is gone: the stream ends once the ring is empty
    /// let got: Vec<u32> =
    ///     futures::executor::block_on(rx.stream().map(Result::unwrap).collect());
    /// assert_eq!(got, [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&mut self) -> RingStream<'_, T> {
        RingStream {
            rx: self,
            wait: SignalWait::new(),
            ended: false,
        }
    }
}

/// The values a [`Consumer`] pops, as a `futures_core::Stream` (from [`Consumer::stream`]):
/// each item is what [`pop_async`](Consumer::pop_async) returns, and the stream ends when a
/// pop would return `Disconnected` (the producer gone and the ring empty). Other errors
/// (`Corrupted`, `HandedOver`) are yielded as items. Dropping the stream between items, or
/// while it waits, pops nothing.
#[derive(Debug)]
#[must_use = "a stream does nothing unless polled"]
pub struct RingStream<'a, T: Pod> {
    rx: &'a mut Consumer<T>,
    wait: SignalWait,
    ended: bool,
}

impl<T: Pod> Unpin for RingStream<'_, T> {}

impl<T: Pod> futures_core::Stream for RingStream<'_, T> {
    type Item = Result<T, GetError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        // Between waits, a value there at once is popped without the wait's set-up.
        let at_once = match this.wait.is_idle() {
            true => this.rx.pop_attempt(),
            false => Attempt::Pending,
        };
        let popped = match at_once {
            Attempt::Ready(r) => Poll::Ready(r),
            Attempt::Pending => this.rx.poll_pop(None, &mut this.wait, cx),
        };
        match popped {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(GetError::Disconnected)) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(item) => Poll::Ready(Some(item)),
        }
    }
}

impl<T: Pod> futures_core::FusedStream for RingStream<'_, T> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use ipc_testkit::pending_after_one_poll as pending;

    use crate::RingBuffer;

    #[test]
    fn a_dropped_pending_push_or_pop_leaves_no_waiter_announced() {
        let (mut tx, mut rx) = RingBuffer::<u64>::new(1).unwrap();
        let parts = rx.parts();
        {
            let mut pop = pin!(rx.pop_async());
            assert!(pending(pop.as_mut()));
            assert_eq!(parts.state().items.waiters(), 1, "announced while pending");
        }
        assert_eq!(parts.state().items.waiters(), 0, "withdrawn by the drop");
        tx.push(1).unwrap();
        {
            let mut push = pin!(tx.push_async(2));
            assert!(pending(push.as_mut()));
            assert_eq!(parts.state().space.waiters(), 1);
        }
        assert_eq!(parts.state().space.waiters(), 0);
        assert_eq!(rx.len(), 1, "the dropped push pushed nothing");
        {
            let mut stream = rx.stream();
            let first = futures::executor::block_on(futures::StreamExt::next(&mut stream));
            assert_eq!(first.unwrap().unwrap(), 1);
            let mut next = pin!(futures::StreamExt::next(&mut stream));
            assert!(pending(next.as_mut()));
        }
        assert_eq!(
            parts.state().items.waiters(),
            0,
            "a dropped stream withdraws too"
        );
        assert!(rx.is_empty());
    }
}
