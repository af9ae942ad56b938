//! `apply` and `apply_async`: one call in a worker.

use std::sync::{Arc, Mutex};

use ipc_core::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Pool;
use super::dispatch::Sink;
use super::reply::Reply;
use super::wire::{Input, TaskMsg};
use crate::async_result::{AsyncResult, ResultSlot};
use crate::error::{SubmitError, TaskError};
use crate::raw::ChunkPool;

/// Where a task's sink leaves the outcome of a directly answered `apply` that was not answered
/// directly after all (a failure, a large result, a dead worker).
type Cell = Arc<Mutex<Option<Result<Vec<u8>, TaskError>>>>;

impl Pool {
    /// Runs `f(arg)` in a worker and waits for its result (Python's `apply`).
    ///
    /// ```no_run
    /// fn add_one(x: i32) -> i32 {
    ///     x + 1
    /// }
    ///
    /// let pool = ipc_pool::Pool::new(1)?;
    /// assert_eq!(pool.apply(add_one, 41)?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The worker answers the waiting caller directly, through a reply slot in shared memory,
    /// when the result is small (up to 496 encoded bytes): no thread of the pool stands
    /// between them.
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let func = self.map_func(f);
        let input = codec::encode(std::slice::from_ref(&arg)).map_err(SubmitError::Encode)?;
        let shared = &self.shared;
        let cell: Cell = Arc::new(Mutex::new(None));
        let (id, slot, worker) = {
            let mut st = shared.lock();
            if st.closed || shared.stopping() {
                return Err(SubmitError::Closed.into());
            }
            if let Some(reason) = st.broken.clone() {
                return Err(TaskError::PoolBroken { reason });
            }
            let Some(slot) = st.free_replies.pop() else {
                // Every slot is held by another waiting caller: the result thread answers.
                drop(st);
                return self.apply_async(f, arg)?.get();
            };
            let id = st.next_id;
            st.next_id += 1;
            shared.replies.arm(slot, id);
            let (c, board) = (Arc::clone(&cell), Arc::clone(&shared.replies));
            st.sinks.insert(
                id,
                Sink::Boxed(Box::new(move |out| {
                    *c.lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
                    board.deliver(slot, id);
                })),
            );
            st.pending.push_back(TaskMsg {
                id,
                reply: Some(slot),
                func,
                input: Input::shared(input),
            });
            shared.dispatch(&mut st);
            // The worker it went to, unless it is still waiting (it was queued last).
            let queued = st.pending.back().is_some_and(|t| t.id == id);
            (id, slot, (!queued).then_some(st.last_dispatch))
        };
        let outcome = match shared.replies.wait(slot, id) {
            Reply::Ready(output) => {
                // The bookkeeping the result thread does for an answer on the result queue.
                let joiners = {
                    let mut st = shared.lock();
                    st.sinks.remove(&id);
                    // The worker it went to, or else (handed on after a death, say) whichever
                    // holds it.
                    let _ = worker.is_some_and(|w| st.retire(w, id))
                        || (0..st.workers.len()).any(|w| st.retire(w, id));
                    st.futile_respawns = 0;
                    shared.dispatch(&mut st);
                    shared.replies.free(slot);
                    st.free_replies.push(slot);
                    st.joiners
                };
                if joiners > 0 {
                    shared.idle.notify_all();
                }
                Ok(output)
            }
            Reply::Delivered => {
                let out = cell.lock().unwrap_or_else(|p| p.into_inner()).take();
                let mut st = shared.lock();
                shared.replies.free(slot);
                st.free_replies.push(slot);
                out.unwrap_or_else(|| {
                    Err(TaskError::Codec {
                        message: "the reply slot was taken by another task".into(),
                    })
                })
            }
        };
        let mut values: Vec<R> = codec::decode(&outcome?).map_err(|e| TaskError::Codec {
            message: format!("result: {e}"),
        })?;
        values.pop().ok_or_else(|| TaskError::Codec {
            message: "empty result".into(),
        })
    }

    /// Runs `f(arg)` in a worker; returns at once with an [`AsyncResult`]. The pool keeps `arg`
    /// until the task has ended: a shared object in it (a `RawValue`, a queue) stays open for
    /// the worker to reopen, as `Process::new` keeps its argument for the child.
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_apply(f, arg, ResultSlot::new(None, None))
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` and `error_callback`: one of
    /// them runs in the parent's result thread when the task ends.
    #[doc(alias = "error_callback")]
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        on_success: impl FnOnce(&R) + Send + 'static,
        on_error: impl FnOnce(&TaskError) + Send + 'static,
    ) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let slot = ResultSlot::new(Some(Box::new(on_success)), Some(Box::new(on_error)));
        self.submit_apply(f, arg, slot)
    }
}
