//! The async forms of [`Queue`]: `put_async`, `get_async` and their timeout forms, a
//! `futures_core::Stream` of received values, and the blocking iterator.
//!
//! Each claims a slot as the blocking call does (the same attempts, the same liveness checks,
//! see `awaiting.rs`), then writes or reads it within the same poll: a slot is claimed and
//! committed (or read and freed) with no await in between, so a future dropped while it waits
//! holds no slot, and its value (for a put) is simply dropped.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytemuck::Pod;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Encoding, Plain, Queue, Serde, deadline, get_error, put_error};
use crate::awaiting::SignalWait;
use crate::error::{GetError, PutError, TryGetError};
use crate::raw_queue::{ClaimFlags, Side, SlotPayload, WaitEnd};

impl<T, E: Encoding> Queue<T, E> {
    /// Claims a slot for writing from a future.
    async fn claim_put_async(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(u64, SlotPayload), WaitEnd> {
        // A slot free at once is claimed without the wait's set-up (its clock reads among it).
        if let Some(claimed) = self.raw.claim_at_once(Side::Put)? {
            return Ok(claimed);
        }
        let mut wait = SignalWait::new();
        let mut flags = ClaimFlags::default();
        poll_fn(|cx| {
            self.raw
                .poll_claim(Side::Put, deadline, &mut wait, &mut flags, cx)
        })
        .await
    }

    /// Claims the next message from a future.
    async fn claim_get_async(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(u64, SlotPayload), GetError> {
        // As for a put: a message there at once is claimed without the wait's set-up.
        if let Some(claimed) = self.raw.claim_at_once(Side::Get).map_err(get_error)? {
            return Ok(claimed);
        }
        let mut wait = SignalWait::new();
        let mut flags = ClaimFlags::default();
        poll_fn(|cx| {
            self.raw
                .poll_claim(Side::Get, deadline, &mut wait, &mut flags, cx)
        })
        .await
        .map_err(get_error)
    }
}

/// `put_async` and `put_timeout_async`, the same for every encoding (the docs of `put_async`
/// given): both go through the impl's own `put_until_async`.
macro_rules! put_async_forms {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        #[doc(alias = "put")]
        pub async fn put_async(&mut self, value: T) -> Result<(), PutError<T>> {
            self.put_until_async(value, None).await
        }

        /// The async form of [`put_timeout`](Self::put_timeout) (the timeout counts from this
        /// call).
        #[doc(alias = "put")]
        pub fn put_timeout_async(
            &mut self,
            value: T,
            timeout: Duration,
        ) -> impl Future<Output = Result<(), PutError<T>>> + '_ {
            self.put_until_async(value, deadline(timeout))
        }
    };
}

impl<T: Pod> Queue<T, Plain> {
    put_async_forms! {
        /// The async form of [`put`](Self::put): a future that puts `value`, waiting for a free
        /// slot as long as a consumer is alive, for any executor (woken through
        /// `ipc_core::raw::reactor` by the getter that frees a slot). Dropped before it is ready,
        /// it claims no slot (the value is dropped with it).
        ///
        /// ```
        /// use ipc_queue::Queue;
        ///
        /// let mut q = Queue::<u64>::new(4)?;
        /// futures::executor::block_on(async {
        ///     q.put_async(7).await?;
        ///     assert_eq!(q.get_async().await?, 7);
        ///     Ok::<_, Box<dyn std::error::Error>>(())
        /// })?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
    }

    async fn put_until_async(
        &mut self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), PutError<T>> {
        match self.claim_put_async(deadline).await {
            Ok((pos, slot)) => self.commit(pos, slot, value).map_err(PutError::from),
            Err(e) => Err(put_error(e, value)),
        }
    }

    /// The async form of [`get`](Self::get): a future that gets the next value, waiting while a
    /// producer is alive; `Disconnected` once the queue is empty and every producer is gone, as
    /// for `get`. Dropped before it is ready, it claims no message.
    ///
    /// Tasks of one process that await one queue should hold clones ([`try_clone`]) of one
    /// handle: clones share the mapping, so their awaits are one registration of the reactor,
    /// with one liveness check per slice between them, where handles opened one by one are one
    /// registration (and one check per slice) each.
    ///
    /// [`try_clone`]: Self::try_clone
    #[doc(alias = "get")]
    pub async fn get_async(&mut self) -> Result<T, GetError> {
        let (pos, slot) = self.claim_get_async(None).await?;
        Ok(self.read(pos, slot))
    }

    /// The async form of [`get_timeout`](Self::get_timeout) (the timeout counts from this
    /// call).
    #[doc(alias = "get")]
    pub fn get_timeout_async(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, GetError>> + '_ {
        let deadline = deadline(timeout);
        async move {
            let (pos, slot) = self.claim_get_async(deadline).await?;
            Ok(self.read(pos, slot))
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T, Serde> {
    put_async_forms! {
        /// The async form of [`put`](Self::put) (see `Queue<T, Plain>::put_async`). The value is
        /// encoded at the first poll; a future dropped while it waits for a slot claims none, and a
        /// spill segment made for it is removed.
    }

    async fn put_until_async(
        &mut self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), PutError<T>> {
        if let Err(e) = self.raw.may_put() {
            return Err(put_error(e, value));
        }
        let spilled = match self.encode(&value) {
            Ok(s) => s,
            Err(e) => return Err(e.put(value)),
        };
        // Dropped while waiting, `spilled` drops still owned: its name goes.
        match self.claim_put_async(deadline).await {
            Ok((pos, slot)) => {
                if self.write_record(pos, slot, spilled) {
                    Ok(())
                } else {
                    Err(PutError::Corrupted(value))
                }
            }
            Err(e) => Err(put_error(e, value)),
        }
    }

    /// The async form of [`get`](Self::get) (see `Queue<T, Plain>::get_async`).
    #[doc(alias = "get")]
    pub async fn get_async(&mut self) -> Result<T, GetError> {
        let (pos, slot) = self.claim_get_async(None).await?;
        self.read(pos, slot).map_err(GetError::from)
    }

    /// The async form of [`get_timeout`](Self::get_timeout) (the timeout counts from this
    /// call).
    #[doc(alias = "get")]
    pub fn get_timeout_async(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, GetError>> + '_ {
        let deadline = deadline(timeout);
        async move {
            let (pos, slot) = self.claim_get_async(deadline).await?;
            self.read(pos, slot).map_err(GetError::from)
        }
    }
}

impl<T: Pod> Queue<T, Plain> {
    /// Reads and frees a claimed slot (what `get` does after its claim).
    fn read_claimed(&mut self, pos: u64, slot: SlotPayload) -> Result<T, GetError> {
        Ok(self.read(pos, slot))
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T, Serde> {
    /// Reads and frees a claimed slot (what `get` does after its claim).
    fn read_claimed(&mut self, pos: u64, slot: SlotPayload) -> Result<T, GetError> {
        self.read(pos, slot)
            .map_err(|e: TryGetError| GetError::from(e))
    }
}

/// Whether a receive error ends a stream or an iterator (every producer gone, or the queue shut
/// down) rather than being yielded.
pub(crate) fn ends_receiving(e: &GetError) -> bool {
    matches!(e, GetError::Disconnected | GetError::ShutDown)
}

/// The values a [`Queue`] receives, as a `futures_core::Stream` (from
/// [`Queue::stream`]): each item is what [`get_async`](Queue::get_async) returns, and the
/// stream ends when a get would return `Disconnected` (every producer gone and the queue
/// empty) or `ShutDown`. Other errors (`Corrupted`, a decode error) are yielded as items.
/// Dropping the stream between items, or while it waits, claims nothing.
#[derive(Debug)]
#[must_use = "a stream does nothing unless polled"]
pub struct QueueStream<'a, T, E: Encoding = Plain> {
    q: &'a mut Queue<T, E>,
    wait: SignalWait,
    flags: ClaimFlags,
    ended: bool,
}

impl<T, E: Encoding> Unpin for QueueStream<'_, T, E> {}

/// The values a [`Queue`] receives, as a blocking iterator (from [`Queue::iter`], as
/// crossbeam's `Receiver::iter`): each item is what [`get`](Queue::get) returns, and the
/// iterator ends when a get would return `Disconnected` (every producer gone and the queue
/// empty) or `ShutDown`.
#[derive(Debug)]
#[must_use = "an iterator does nothing unless consumed"]
pub struct Iter<'a, T, E: Encoding = Plain> {
    q: &'a mut Queue<T, E>,
    ended: bool,
}

/// The stream, the iterator and the methods that make them, for one encoding.
macro_rules! receiving {
    ($enc:ty, $($bound:tt)+) => {
        impl<T: $($bound)+> futures_core::Stream for QueueStream<'_, T, $enc> {
            type Item = Result<T, GetError>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                let this = self.get_mut();
                if this.ended {
                    return Poll::Ready(None);
                }
                // Between waits, a message there at once is claimed without the wait's set-up.
                let at_once = if this.wait.is_idle() {
                    this.q.raw.claim_at_once(Side::Get).transpose()
                } else {
                    None
                };
                let claimed = match at_once {
                    Some(r) => r.map_err(get_error),
                    None => match this
                        .q
                        .raw
                        .poll_claim(Side::Get, None, &mut this.wait, &mut this.flags, cx)
                    {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(r) => r.map_err(get_error),
                    },
                };
                this.flags = ClaimFlags::default();
                let item = claimed.and_then(|(pos, slot)| this.q.read_claimed(pos, slot));
                match item {
                    Err(e) if ends_receiving(&e) => {
                        this.ended = true;
                        Poll::Ready(None)
                    }
                    other => Poll::Ready(Some(other)),
                }
            }
        }

        impl<T: $($bound)+> futures_core::FusedStream for QueueStream<'_, T, $enc> {
            fn is_terminated(&self) -> bool {
                self.ended
            }
        }

        impl<T: $($bound)+> Iterator for Iter<'_, T, $enc> {
            type Item = Result<T, GetError>;

            fn next(&mut self) -> Option<Self::Item> {
                if self.ended {
                    return None;
                }
                let item = self
                    .q
                    .raw
                    .claim_get(None)
                    .map_err(get_error)
                    .and_then(|(pos, slot)| self.q.read_claimed(pos, slot));
                match item {
                    Err(e) if ends_receiving(&e) => {
                        self.ended = true;
                        None
                    }
                    other => Some(other),
                }
            }
        }

        impl<T: $($bound)+> std::iter::FusedIterator for Iter<'_, T, $enc> {}

        impl<T: $($bound)+> Queue<T, $enc> {
            /// The values this queue receives, as a `futures_core::Stream` that ends once every
            /// producer is gone and the queue is empty (or it is shut down); see
            /// [`QueueStream`].
            ///
            /// ```
            /// use futures::StreamExt;
            /// use ipc_queue::Queue;
            ///
            /// let mut q = Queue::<u32>::new(8)?;
            /// let mut producer = q.try_clone()?;
            /// for i in 0..3 {
            ///     producer.put(i)?;
            /// }
            /// drop(producer);
            /// q.close(); // this handle produces no more either
            /// let got: Vec<u32> =
            ///     futures::executor::block_on(q.stream().map(Result::unwrap).collect());
            /// assert_eq!(got, [0, 1, 2]);
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn stream(&mut self) -> QueueStream<'_, T, $enc> {
                QueueStream {
                    q: self,
                    wait: SignalWait::new(),
                    flags: ClaimFlags::default(),
                    ended: false,
                }
            }

            /// The values this queue receives, as a blocking iterator that ends once every
            /// producer is gone and the queue is empty (or it is shut down); see [`Iter`].
            ///
            /// ```
            /// use ipc_queue::Queue;
            ///
            /// let mut q = Queue::<u32>::new(8)?;
            /// let mut producer = q.try_clone()?;
            /// std::thread::spawn(move || {
            ///     for i in 0..3 {
            ///         producer.put(i).unwrap();
            ///     }
            /// });
            /// q.close();
            /// let got: Vec<u32> = q.iter().map(Result::unwrap).collect();
            /// assert_eq!(got, [0, 1, 2]);
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn iter(&mut self) -> Iter<'_, T, $enc> {
                Iter {
                    q: self,
                    ended: false,
                }
            }
        }
    };
}

receiving!(Plain, Pod);
receiving!(Serde, Serialize + DeserializeOwned);

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use ipc_testkit::pending_after_one_poll as pending;

    use crate::{JoinableQueue, Queue};

    #[test]
    fn a_dropped_pending_get_or_put_leaves_no_waiter_announced() {
        let mut q = Queue::<u64>::new(1).unwrap();
        let st = q.raw().state() as *const crate::raw_queue::QueueState;
        // SAFETY: `q`'s mapping outlives every use below (`q` lives to the end of the test).
        let st = unsafe { &*st };
        {
            let mut get = pin!(q.get_async());
            assert!(pending(get.as_mut()));
            assert_eq!(st.not_empty.waiters(), 1, "announced while pending");
        }
        assert_eq!(st.not_empty.waiters(), 0, "withdrawn by the drop");
        q.try_put(1).unwrap();
        {
            let mut put = pin!(q.put_async(2));
            assert!(pending(put.as_mut()));
            assert_eq!(st.not_full.waiters(), 1);
        }
        assert_eq!(st.not_full.waiters(), 0);
        assert_eq!(q.len(), 1);
        {
            let mut stream = q.stream();
            assert_eq!(
                futures::executor::block_on(futures::StreamExt::next(&mut stream))
                    .unwrap()
                    .unwrap(),
                1
            );
            let mut next = pin!(futures::StreamExt::next(&mut stream));
            assert!(pending(next.as_mut()));
        }
        assert_eq!(st.not_empty.waiters(), 0, "a dropped stream withdraws too");
    }

    #[test]
    fn a_dropped_pending_join_leaves_no_waiter_announced() {
        let mut q = JoinableQueue::<u64>::new(2).unwrap();
        let st = q.raw().state() as *const crate::raw_queue::QueueState;
        // SAFETY: as above, `q` lives to the end of the test.
        let st = unsafe { &*st };
        q.put(1).unwrap();
        {
            let mut join = pin!(q.join_async());
            assert!(pending(join.as_mut()));
            assert_eq!(st.all_done.waiters(), 1);
        }
        assert_eq!(st.all_done.waiters(), 0);
        assert_eq!(q.unfinished_tasks(), 1);
    }
}
