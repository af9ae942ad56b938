//! `apply` and `apply_async`: one call in a worker.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Pool;
use crate::async_result::{AsyncResult, ResultSlot};
use crate::error::{SubmitError, TaskError};
use crate::raw::ChunkPool;

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
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Runs `f(arg)` in a worker; returns at once with an [`AsyncResult`].
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
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
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let slot = ResultSlot::new(Some(Box::new(on_success)), Some(Box::new(on_error)));
        self.submit_apply(f, arg, slot)
    }
}
