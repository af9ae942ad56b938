//! The async forms of [`Connection`]: `send_async`, `send_bytes_async`, `recv_async`,
//! `recv_bytes_async` and their timeout forms, a `futures_core::Stream` of received messages
//! ([`Connection::stream`]), and the blocking iterator ([`Connection::iter`]).
//!
//! Each runs the steps of its blocking call, with the waiting done by [`SignalWait`] (see
//! `awaiting.rs`): the same end claims, the same chunk writes and reads, the same liveness
//! checks once per slice, so a dead peer ends an await with the error it gives a blocking call.
//!
//! ## Cancellation
//!
//! The table is in [`Connection`]'s docs. In short: a send or receive future holds its end
//! only while it moves one message; dropped before its first chunk it frees the end and takes
//! nothing. A receive dropped halfway through a message larger than the ring leaves that
//! message with its handle (`Rx::partial`, with the end still claimed), and the next receive
//! of the handle continues it. A send dropped halfway frees the end with a prefix published,
//! which the receiver drops as a dead sender's.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    ChunkWait, ClaimWait, Connection, EndClaim, MAX_MESSAGE, RecvError, SendError, Sink, Wrote,
    claim_attempt, release_end,
};
use crate::awaiting::SignalWait;
use crate::claim;
use crate::membership::Kernel;
use crate::participants::{CONSUMER, Identity, PRODUCER};
use crate::signal::{Attempt, Blocked, SLICE};

/// One poll of claiming `end` for `me` (the async form of `claim_end`).
fn poll_claim(
    end: &EndClaim,
    me: Identity,
    wait: &mut SignalWait,
    deadline: Option<Instant>,
    spin: Duration,
    cx: &mut Context<'_>,
) -> Poll<Result<bool, ClaimWait>> {
    wait.poll(
        &end.free,
        deadline,
        spin,
        cx,
        || claim_attempt(end, me),
        || claim::orphan_dead(&end.word, &Kernel).map_err(|_| ClaimWait::Corrupted),
    )
    .map(|r| match r {
        Ok(orphaned) => Ok(orphaned),
        Err(Blocked::Failed(e)) => Err(e),
        Err(Blocked::Timeout) => Err(ClaimWait::Timeout),
    })
}

/// An async send of one message, from poll to poll.
struct Sending<'a, 'b> {
    conn: &'a mut Connection,
    /// The message: these bytes, or (`None`) the connection's buffer, where `send_async`
    /// encoded the value (kept there rather than moved into the future, whose moves of a `Vec`
    /// went through words that wait for the stores just made).
    data: Option<&'b [u8]>,
    deadline: Option<Instant>,
    wait: SignalWait,
    /// Set while this send holds the send end.
    held: Option<Identity>,
    /// Bytes of the message published so far.
    sent: usize,
    /// When this send first waited for the end.
    since: Option<Instant>,
    /// The future has returned its result.
    finished: bool,
    /// Check the receivers at the first wait for room (the end took a slice or more to get).
    check_now: bool,
}

impl<'a, 'b> Sending<'a, 'b> {
    fn new(conn: &'a mut Connection, data: Option<&'b [u8]>, deadline: Option<Instant>) -> Self {
        Self {
            conn,
            data,
            deadline,
            wait: SignalWait::new(),
            held: None,
            sent: 0,
            since: None,
            check_now: false,
            finished: false,
        }
    }

    /// Frees the send end, if held.
    fn release(&mut self) {
        if let (Some(me), Some(tx)) = (self.held.take(), &self.conn.tx) {
            release_end(&tx.dir.state().send, me);
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        let conn = &mut *self.conn;
        let data = self.data.unwrap_or(&conn.buf);
        if data.len() > MAX_MESSAGE {
            return Poll::Ready(Err(SendError::TooLarge { len: data.len() }));
        }
        let spin = conn.spin;
        let Some(tx) = conn.tx.as_mut() else {
            return Poll::Ready(Err(SendError::NotWritable));
        };
        let dir = tx.dir;
        if self.held.is_none() {
            let Ok(me) = tx.member.identity(&dir.table()) else {
                return Poll::Ready(Err(SendError::NotAttached));
            };
            // A free end is taken at once, without the wait's set-up or a read of the clock.
            let claimed = match claim_attempt(&dir.state().send, me) {
                Attempt::Ready(r) => r.map(|orphaned| (orphaned, false)),
                Attempt::Pending => {
                    let since = *self.since.get_or_insert_with(Instant::now);
                    let r = ready!(poll_claim(
                        &dir.state().send,
                        me,
                        &mut self.wait,
                        self.deadline,
                        spin,
                        cx
                    ));
                    r.map(|orphaned| (orphaned, since.elapsed() >= SLICE))
                }
            };
            match claimed {
                Ok((orphaned, waited_a_slice)) => {
                    self.held = Some(me);
                    // Many senders queued for the end: check the receivers at the first wait
                    // for room rather than after a slice more each (see `Receiving`).
                    self.check_now = waited_a_slice;
                    if orphaned {
                        if let Err(e) = tx.repair_tail() {
                            self.release();
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                Err(ClaimWait::Timeout) => return Poll::Ready(Err(SendError::Timeout)),
                Err(ClaimWait::Corrupted) => return Poll::Ready(Err(SendError::Corrupted)),
            }
        }
        let r = loop {
            let (tail, want) = match tx.write_some(data, &mut self.sent) {
                Ok(Wrote::Done) => break Ok(()),
                Ok(Wrote::Full { tail, want }) => (tail, want),
                Err(e) => break Err(e),
            };
            if std::mem::take(&mut self.check_now) && dir.role_gone(CONSUMER) {
                break Err(SendError::Disconnected);
            }
            // As `write_message`: the deadline bounds only the waits before the first chunk.
            let deadline = if self.sent == 0 { self.deadline } else { None };
            let room = self.wait.poll(
                &dir.state().space,
                deadline,
                spin,
                cx,
                || tx.room_attempt(tail, want),
                || dir.receivers_check(),
            );
            match ready!(room) {
                Ok(()) => {}
                Err(Blocked::Failed(e)) => break Err(e),
                Err(Blocked::Timeout) => break Err(SendError::Timeout),
            }
        };
        self.release();
        Poll::Ready(r)
    }
}

impl Future for Sending<'_, '_> {
    type Output = Result<(), SendError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.finished, "a send future polled after it completed");
        let r = ready!(this.poll_send(cx));
        this.finished = true;
        Poll::Ready(r)
    }
}

impl Drop for Sending<'_, '_> {
    fn drop(&mut self) {
        // Mid-message, this leaves a prefix published: the receiver drops it, as a dead
        // sender's (see the module docs).
        self.release();
    }
}

/// An async receive of one message, from poll to poll (and, for a stream, from item to item).
struct Receiving<'a> {
    conn: &'a mut Connection,
    deadline: Option<Instant>,
    wait: SignalWait,
    /// Set while this receive holds the receive end.
    held: Option<Identity>,
    /// The message being read: its total and the bytes read so far (in `buf`).
    current: Option<(usize, usize)>,
    buf: Vec<u8>,
    /// What the last liveness check decided: the message's sender (`current` set) or every
    /// sender (not set) has gone.
    gone: bool,
    /// When this receive first waited (for the end or a chunk).
    since: Option<Instant>,
    /// The future has returned its result (a stream's never does).
    finished: bool,
}

impl<'a> Receiving<'a> {
    fn new(conn: &'a mut Connection, deadline: Option<Instant>, buf: Vec<u8>) -> Self {
        Self {
            conn,
            deadline,
            wait: SignalWait::new(),
            held: None,
            current: None,
            buf,
            gone: false,
            since: None,
            finished: false,
        }
    }

    /// Ends the receive of one message: frees the receive end, unless a message is half read,
    /// which the handle then keeps with the end (see the module docs).
    fn end(&mut self) {
        let Some(me) = self.held.take() else {
            return;
        };
        let Some(rx) = self.conn.rx.as_mut() else {
            return;
        };
        match self.current.take() {
            Some((total, got)) => {
                self.buf.truncate(got);
                rx.partial = Some((total, std::mem::take(&mut self.buf)));
            }
            None => release_end(&rx.dir.state().recv, me),
        }
        self.gone = false;
        self.since = None;
    }

    /// One poll of receiving a message; its bytes are in `self.buf` when it is ready.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RecvError>> {
        let r = ready!(self.poll_inner(cx));
        if !matches!(r, Err(RecvError::Timeout)) {
            // Only a timeout keeps a message half read (as `receive` does).
            self.current = None;
        }
        self.end();
        Poll::Ready(r)
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RecvError>> {
        let spin = self.conn.spin;
        let Some(rx) = self.conn.rx.as_mut() else {
            return Poll::Ready(Err(RecvError::NotReadable));
        };
        let dir = rx.dir;
        let st = dir.state();
        if self.held.is_none() {
            let Ok(me) = rx.member.identity(&dir.table()) else {
                return Poll::Ready(Err(RecvError::NotAttached));
            };
            if let Some((total, bytes)) = rx.take_partial(me) {
                // The rest of the message a receive of this handle began.
                self.current = Some((total, bytes.len()));
                self.buf = bytes;
            } else {
                // A free end is taken at once, without the wait's set-up or a read of the clock.
                let claimed = match claim_attempt(&st.recv, me) {
                    Attempt::Ready(r) => r.map(|_| false),
                    Attempt::Pending => {
                        let since = *self.since.get_or_insert_with(Instant::now);
                        let r = ready!(poll_claim(
                            &st.recv,
                            me,
                            &mut self.wait,
                            self.deadline,
                            spin,
                            cx
                        ));
                        r.map(|_| since.elapsed() >= SLICE)
                    }
                };
                let waited_a_slice = match claimed {
                    // An orphaned receive claim needs no repair (see `pipe.rs`).
                    Ok(waited) => waited,
                    Err(ClaimWait::Timeout) => return Poll::Ready(Err(RecvError::Timeout)),
                    Err(ClaimWait::Corrupted) => return Poll::Ready(Err(RecvError::Corrupted)),
                };
                self.current = None;
                self.buf.clear();
                if waited_a_slice {
                    // A slice or more went by waiting for the end (many receivers queue up
                    // there): check the senders now, rather than after a slice more each, so
                    // that a thousand receivers of a dead sender end one after the other at
                    // once, as their blocking forms would in parallel.
                    self.gone = dir.role_gone(PRODUCER);
                }
            }
            self.held = Some(me);
        }
        let mut head = match rx.load_head() {
            Ok(h) => h,
            Err(e) => return Poll::Ready(Err(e)),
        };
        loop {
            match rx.read_published(&mut head, &mut self.current, &mut Sink::Vec(&mut self.buf)) {
                Ok(Some(_)) => return Poll::Ready(Ok(())),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // As `wait_chunk`.
            let reading = self.current.is_some();
            let gone = std::cell::Cell::new(self.gone);
            let chunk = self.wait.poll(
                &st.items,
                self.deadline,
                spin,
                cx,
                || rx.chunk_attempt(head, reading, gone.get()),
                || rx.chunk_check(head, reading).map(|g| gone.set(g)),
            );
            self.gone = gone.get();
            let chunk = ready!(chunk);
            self.gone = false;
            match chunk {
                Ok(()) => {}
                Err(Blocked::Failed(ChunkWait::Abandoned)) => {
                    // Its sender died (or gave up) mid-message: the prefix is lost.
                    self.current = None;
                    self.buf.clear();
                }
                Err(Blocked::Failed(ChunkWait::Disconnected)) => {
                    return Poll::Ready(Err(RecvError::Disconnected));
                }
                Err(Blocked::Failed(ChunkWait::Corrupted)) => {
                    return Poll::Ready(Err(RecvError::Corrupted));
                }
                Err(Blocked::Failed(ChunkWait::Timeout)) | Err(Blocked::Timeout) => {
                    return Poll::Ready(Err(RecvError::Timeout));
                }
            }
        }
    }

    /// Ready for another message (a stream's next item), with `buf` to fill.
    fn reset(&mut self, buf: Vec<u8>) {
        self.end();
        self.buf = buf;
    }
}

impl Future for Receiving<'_> {
    type Output = Result<Vec<u8>, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.finished, "a receive future polled after it completed");
        let r = ready!(this.poll_receive(cx));
        this.finished = true;
        r?;
        Poll::Ready(Ok(std::mem::take(&mut this.buf)))
    }
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

impl Connection {
    /// The part of a receive that needs no wait: takes the receive end if it is free and reads
    /// a message that is there whole into `buf` (the end freed again). `None`: the receive
    /// continues as a [`Receiving`] (which needs a wait's set-up), holding the end (`held`)
    /// with what it read of a message so far (`current`), or without the end when another
    /// handle holds it or this handle kept a half-read message from an earlier receive.
    #[inline]
    fn recv_at_once(
        &mut self,
        buf: &mut Vec<u8>,
        held: &mut Option<Identity>,
        current: &mut Option<(usize, usize)>,
    ) -> Option<Result<(), RecvError>> {
        let Some(rx) = self.rx.as_mut() else {
            return Some(Err(RecvError::NotReadable));
        };
        if rx.partial.is_some() {
            return None;
        }
        let dir = rx.dir;
        let Ok(me) = rx.member.identity(&dir.table()) else {
            return Some(Err(RecvError::NotAttached));
        };
        let end = &dir.state().recv;
        match claim_attempt(end, me) {
            // An orphaned receive claim needs no repair (see `pipe.rs`).
            Attempt::Ready(Ok(_)) => {}
            Attempt::Ready(Err(ClaimWait::Corrupted)) => return Some(Err(RecvError::Corrupted)),
            Attempt::Ready(Err(ClaimWait::Timeout)) | Attempt::Pending => return None,
        }
        buf.clear();
        let r = rx
            .load_head()
            .and_then(|mut head| rx.read_published(&mut head, current, &mut Sink::Vec(buf)));
        match r {
            Ok(None) => {
                *held = Some(me);
                None
            }
            r => {
                *current = None;
                release_end(end, me);
                Some(r.map(|_| ()))
            }
        }
    }

    /// A receive into `buf`: what needs no wait at once, the rest as a [`Receiving`]; the
    /// message's bytes, in `buf`'s allocation.
    async fn recv_data_async(
        &mut self,
        deadline: Option<Instant>,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, RecvError> {
        let (mut held, mut current) = (None, None);
        if let Some(r) = self.recv_at_once(&mut buf, &mut held, &mut current) {
            return r.map(|()| buf);
        }
        let mut receiving = Receiving::new(self, deadline, buf);
        receiving.held = held;
        receiving.current = current;
        receiving.await
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Some(Instant::now() + timeout)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecvError> {
    ipc_core::codec::decode(bytes).map_err(RecvError::Decode)
}

impl Connection {
    fn send_value_async<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<(), SendError>> + Send + '_ {
        // Encoded now, into the connection's buffer, so that the future does not borrow
        // `value`; only whether that failed goes into the future (a `Result<Vec<u8>,
        // SendError>` moved into it and matched there was copied through unaligned words that
        // wait for the stores just made: a third of an awaited send in a profile).
        self.buf.clear();
        let failed = ipc_core::codec::encode_into(value, &mut self.buf).err();
        async move {
            if let Some(e) = failed {
                return Err(SendError::Encode(e));
            }
            Sending::new(self, None, deadline).await
        }
    }

    /// The async form of [`send`](Self::send): a future that sends `value`, for any executor
    /// (woken through `ipc_core::raw::reactor` when the send end is freed or a receiver frees
    /// room). The value is encoded at this call, so the future does not borrow it. A message
    /// larger than the ring streams through it as the receiver reads; dropped before it is
    /// ready, the future sends nothing, except a message larger than the ring dropped halfway,
    /// whose receiver then drops the part it got (see [cancellation](Connection#cancellation)). `Disconnected`
    /// once every receiver has gone, as for `send`.
    ///
    /// ```
    /// let (mut a, mut b) = ipc_queue::pipe()?;
    /// futures::executor::block_on(async {
    ///     a.send_async(&("ping", 1u32)).await?;
    ///     assert_eq!(b.recv_async::<(String, u32)>().await?, ("ping".into(), 1));
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "send")]
    pub fn send_async<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> impl Future<Output = Result<(), SendError>> + Send + '_ {
        self.send_value_async(value, None)
    }

    /// The async form of [`send_timeout`](Self::send_timeout) (the timeout counts from this
    /// call): `Timeout` means nothing was sent.
    #[doc(alias = "send")]
    pub fn send_timeout_async<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), SendError>> + Send + '_ {
        self.send_value_async(value, deadline(timeout))
    }

    /// The async form of [`send_bytes`](Self::send_bytes) (see
    /// [`send_async`](Self::send_async)).
    #[doc(alias = "send_bytes")]
    pub fn send_bytes_async<'a>(
        &'a mut self,
        data: &'a [u8],
    ) -> impl Future<Output = Result<(), SendError>> + Send + 'a {
        Sending::new(self, Some(data), None)
    }

    /// The async form of [`send_bytes_timeout`](Self::send_bytes_timeout) (the timeout counts
    /// from this call): `Timeout` means nothing was sent.
    #[doc(alias = "send_bytes")]
    pub fn send_bytes_timeout_async<'a>(
        &'a mut self,
        data: &'a [u8],
        timeout: Duration,
    ) -> impl Future<Output = Result<(), SendError>> + Send + 'a {
        Sending::new(self, Some(data), deadline(timeout))
    }

    async fn recv_value_async<T: DeserializeOwned>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<T, RecvError> {
        let buf = std::mem::take(&mut self.buf);
        let bytes = self.recv_data_async(deadline, buf).await?;
        let r = decode(&bytes);
        self.buf = bytes;
        r
    }

    /// The async form of [`recv`](Self::recv): a future that receives the next value, waiting
    /// while a sender may still send; `Disconnected` once every sender has gone and nothing is
    /// left, as for `recv`. Dropped before it is ready, it takes no message, except one larger
    /// than the ring that it was halfway through: this handle then keeps that message's end
    /// and bytes, and its next receive continues it (see [cancellation](Connection#cancellation)).
    #[doc(alias = "recv")]
    pub async fn recv_async<T: DeserializeOwned>(&mut self) -> Result<T, RecvError> {
        self.recv_value_async(None).await
    }

    /// The async form of [`recv_timeout`](Self::recv_timeout) (the timeout counts from this
    /// call).
    #[doc(alias = "recv")]
    pub fn recv_timeout_async<T: DeserializeOwned>(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, RecvError>> + Send {
        self.recv_value_async(deadline(timeout))
    }

    /// The async form of [`recv_bytes`](Self::recv_bytes) (see
    /// [`recv_async`](Self::recv_async)).
    ///
    /// ```
    /// let (mut a, mut b) = ipc_queue::pipe()?;
    /// let got = futures::executor::block_on(async {
    ///     a.send_bytes_async(b"hello").await?;
    ///     Ok::<_, Box<dyn std::error::Error>>(b.recv_bytes_async().await?)
    /// })?;
    /// assert_eq!(got, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "recv_bytes")]
    pub fn recv_bytes_async(
        &mut self,
    ) -> impl Future<Output = Result<Vec<u8>, RecvError>> + Send + '_ {
        self.recv_data_async(None, Vec::new())
    }

    /// The async form of [`recv_bytes_timeout`](Self::recv_bytes_timeout) (the timeout counts
    /// from this call).
    #[doc(alias = "recv_bytes")]
    pub fn recv_bytes_timeout_async(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, RecvError>> + Send + '_ {
        self.recv_data_async(deadline(timeout), Vec::new())
    }

    /// The values this end receives, as a `futures_core::Stream` that ends once every sender
    /// has gone and nothing is left; see [`ConnectionStream`].
    ///
    /// ```
    /// use futures::StreamExt;
    ///
    /// let (mut r, mut w) = ipc_queue::pipe_simplex()?;
    /// for i in 0..3u32 {
    ///     w.send(&i)?;
    /// }
    /// drop(w); // the only sender: the stream ends after the three
    /// let got: Vec<u32> =
    ///     futures::executor::block_on(r.stream::<u32>().map(Result::unwrap).collect());
    /// assert_eq!(got, [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream<T: DeserializeOwned>(&mut self) -> ConnectionStream<'_, T> {
        let buf = std::mem::take(&mut self.buf);
        ConnectionStream {
            recv: Receiving::new(self, None, buf),
            decode: |buf| decode(buf),
            ended: false,
        }
    }

    /// The messages this end receives as raw bytes, as a `futures_core::Stream` (see
    /// [`stream`](Self::stream)).
    pub fn stream_bytes(&mut self) -> ConnectionStream<'_, Vec<u8>> {
        ConnectionStream {
            recv: Receiving::new(self, None, Vec::new()),
            decode: |buf| Ok(std::mem::take(buf)),
            ended: false,
        }
    }

    /// The values this end receives, as a blocking iterator that ends once every sender has
    /// gone and nothing is left (as crossbeam's `Receiver::iter`); see [`ConnectionIter`].
    ///
    /// ```
    /// let (mut r, mut w) = ipc_queue::pipe_simplex()?;
    /// std::thread::spawn(move || {
    ///     for i in 0..3u32 {
    ///         w.send(&i).unwrap();
    ///     }
    /// });
    /// let got: Vec<u32> = r.iter::<u32>().map(Result::unwrap).collect();
    /// assert_eq!(got, [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter<T: DeserializeOwned>(&mut self) -> ConnectionIter<'_, T> {
        ConnectionIter {
            conn: self,
            recv: Connection::recv::<T>,
            ended: false,
        }
    }

    /// The messages this end receives as raw bytes, as a blocking iterator (see
    /// [`iter`](Self::iter)).
    pub fn iter_bytes(&mut self) -> ConnectionIter<'_, Vec<u8>> {
        ConnectionIter {
            conn: self,
            recv: Connection::recv_bytes,
            ended: false,
        }
    }
}

/// The messages a [`Connection`] receives, as a `futures_core::Stream` (from
/// [`Connection::stream`] or [`Connection::stream_bytes`]): each item is what
/// [`recv_async`](Connection::recv_async) (or `recv_bytes_async`) returns, and the stream ends
/// when a receive would return `Disconnected` (every sender gone, nothing left). Other errors
/// (`Corrupted`, a decode error) are yielded as items. Dropping the stream takes what dropping
/// a receive future takes (see [cancellation](Connection#cancellation)).
#[must_use = "a stream does nothing unless polled"]
pub struct ConnectionStream<'a, T> {
    recv: Receiving<'a>,
    decode: fn(&mut Vec<u8>) -> Result<T, RecvError>,
    ended: bool,
}

impl<T> std::fmt::Debug for ConnectionStream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionStream")
            .field("conn", &self.recv.conn)
            .field("ended", &self.ended)
            .finish()
    }
}

impl<T> Unpin for ConnectionStream<'_, T> {}

impl<T> futures_core::Stream for ConnectionStream<'_, T> {
    type Item = Result<T, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let r = ready!(this.recv.poll_receive(cx));
        let item = r.and_then(|()| (this.decode)(&mut this.recv.buf));
        let buf = std::mem::take(&mut this.recv.buf);
        this.recv.reset(buf);
        match item {
            Err(RecvError::Disconnected) => {
                this.ended = true;
                Poll::Ready(None)
            }
            other => Poll::Ready(Some(other)),
        }
    }
}

impl<T> futures_core::FusedStream for ConnectionStream<'_, T> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

/// The messages a [`Connection`] receives, as a blocking iterator (from [`Connection::iter`]
/// or [`Connection::iter_bytes`], as crossbeam's `Receiver::iter`): each item is what
/// [`recv`](Connection::recv) (or `recv_bytes`) returns, and the iterator ends when a receive
/// would return `Disconnected` (every sender gone, nothing left).
#[must_use = "an iterator does nothing unless consumed"]
pub struct ConnectionIter<'a, T> {
    conn: &'a mut Connection,
    recv: fn(&mut Connection) -> Result<T, RecvError>,
    ended: bool,
}

impl<T> std::fmt::Debug for ConnectionIter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionIter")
            .field("conn", &self.conn)
            .field("ended", &self.ended)
            .finish()
    }
}

impl<T> Iterator for ConnectionIter<'_, T> {
    type Item = Result<T, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        match (self.recv)(self.conn) {
            Err(RecvError::Disconnected) => {
                self.ended = true;
                None
            }
            other => Some(other),
        }
    }
}

impl<T> std::iter::FusedIterator for ConnectionIter<'_, T> {}
