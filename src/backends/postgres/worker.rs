//! A dedicated thread running a single-threaded tokio runtime, for callers on any thread.
//!
//! Synchronous callers hand a future over and block on a standard channel (never on the runtime
//! itself), so they may be tokio tasks; async callers await the task's handle. The runtime is
//! created, driven and dropped on its own thread: dropping a runtime inside another runtime's
//! context would panic.

use std::future::Future;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::{AuditError, AuditErrorKind};

/// The runtime thread; stops when dropped (tasks still running are cancelled).
#[derive(Debug)]
pub(crate) struct Worker {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a runtime thread named `name`.
    pub(crate) fn start(name: &str) -> Result<Self, AuditError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AuditError::with_source(AuditErrorKind::Io, e))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Drives every task spawned through the handle until stopped.
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| AuditError::with_source(AuditErrorKind::Io, e))?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The runtime's handle (for long-running tasks such as the audit writer).
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `fut` on the runtime thread and blocks until it is done. `None` if the runtime is
    /// gone. Safe to call from inside any runtime: it blocks on a standard channel.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }

    /// Runs `fut` on the runtime thread; the caller's runtime is free while it waits.
    pub(crate) async fn run_async<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.spawn(fut).await
    }

    /// Starts `fut` on the runtime thread now; the returned future (which borrows nothing)
    /// resolves with its output, `None` if the runtime is gone.
    pub(crate) fn spawn<T, Fut>(
        &self,
        fut: Fut,
    ) -> impl Future<Output = Option<T>> + Send + 'static + use<T, Fut>
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let task = self.handle.spawn(fut);
        async move { task.await.ok() }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Joined only from a plain thread: inside a runtime, the thread finishes on its own.
        if Handle::try_current().is_err()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_worker_stops_its_runtime_and_joins_its_thread() {
        let w = Worker::start("test-worker").unwrap_or_else(|e| panic!("{e}"));
        let held = std::sync::Arc::new(());
        let in_task = std::sync::Arc::clone(&held);
        drop(w.spawn(async move {
            let _kept = in_task;
            std::future::pending::<()>().await;
        }));
        assert_eq!(w.run(async { 1 }), Some(1));
        assert_eq!(
            std::sync::Arc::strong_count(&held),
            2,
            "held by the pending task"
        );
        // Dropped on a plain thread: joined, so the runtime and its tasks are gone.
        drop(w);
        assert_eq!(std::sync::Arc::strong_count(&held), 1);
    }

    #[test]
    fn sync_calls_work_inside_another_runtime() {
        let w = Worker::start("test-worker").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.run(async { 41 + 1 }), Some(42));
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        outer.block_on(async {
            // A blocking call from a runtime thread: no panic, the work runs elsewhere.
            assert_eq!(w.run(async { 7 }), Some(7));
            assert_eq!(w.run_async(async { 8 }).await, Some(8));
            drop(w);
        });
    }
}
