//! Acknowledgements for async appenders of a [`ChainedLog`](super::ChainedLog): the entry is
//! chained at once on the caller's thread (no I/O), and a dedicated thread, started on first
//! use, waits for the write (and `fdatasync`) that covers it and wakes the caller's task. A
//! tokio worker never blocks on the file: it only takes the log's lock to chain the entry, as a
//! blocking appender does.
//!
//! The acknowledgement means exactly what [`ChainedLog::append`](super::ChainedLog::append)'s
//! return means: the flusher drives the same group commit (`acknowledge_locked`), so an async
//! record joins the batch of blocking appenders and vice versa.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use crate::error::{AuditError, AuditErrorKind};

/// Waits for the entries up to a seq to be acknowledged; implemented by the log's shared state.
pub(super) trait Acknowledge: Send + Sync + 'static {
    /// Returns once every entry up to `seq` is acknowledged (written, and synced if durable).
    fn acknowledge(&self, seq: u64) -> Result<(), AuditError>;
}

/// One async appender's wait.
#[derive(Debug, Default)]
struct Ticket {
    state: Mutex<TicketState>,
}

#[derive(Debug, Default)]
struct TicketState {
    done: Option<Result<(), AuditErrorKind>>,
    waker: Option<Waker>,
}

impl Ticket {
    fn complete(&self, result: Result<(), AuditErrorKind>) {
        let waker = match self.state.lock() {
            Ok(mut st) => {
                st.done = Some(result);
                st.waker.take()
            }
            Err(_) => None,
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The future of one async append: resolves when its ticket is completed.
#[derive(Debug)]
pub(super) struct Acked {
    ticket: Arc<Ticket>,
}

impl Future for Acked {
    type Output = Result<(), AuditError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut st) = self.ticket.state.lock() else {
            return Poll::Ready(Err(AuditError::new(AuditErrorKind::Closed)));
        };
        match st.done {
            Some(r) => Poll::Ready(r.map_err(AuditError::new)),
            None => {
                match &st.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// Requests waiting for the flusher.
#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<(u64, Arc<Ticket>)>,
    stopped: bool,
}

/// The flusher: a thread that acknowledges queued seqs in batches.
#[derive(Debug)]
pub(super) struct Flusher {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Flusher {
    /// Starts the flusher thread for `log` (held weakly: the thread ends with the log).
    pub(super) fn start<A: Acknowledge>(log: Weak<A>) -> std::io::Result<Self> {
        let queue = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let q = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("audit-ack".into())
            .spawn(move || run(&q, &log))?;
        Ok(Self {
            queue,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `seq` (already chained) and returns the future of its acknowledgement.
    pub(super) fn wait_for(&self, seq: u64) -> Acked {
        let ticket = Arc::new(Ticket::default());
        let (lock, cond) = &*self.queue;
        match lock.lock() {
            Ok(mut q) if !q.stopped => {
                q.waiting.push((seq, Arc::clone(&ticket)));
                drop(q);
                cond.notify_one();
            }
            _ => ticket.complete(Err(AuditErrorKind::Closed)),
        }
        Acked { ticket }
    }

    /// Acknowledges what is queued, then stops the thread and waits for it.
    pub(super) fn stop(&self) {
        let (lock, cond) = &*self.queue;
        if let Ok(mut q) = lock.lock() {
            q.stopped = true;
        }
        cond.notify_all();
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// The flusher thread's loop: takes every queued request, acknowledges up to the highest seq
/// among them (one group commit, joined by whatever else is pending), completes them all.
fn run<A: Acknowledge>(queue: &(Mutex<Queue>, Condvar), log: &Weak<A>) {
    let (lock, cond) = queue;
    loop {
        let (batch, stopped) = {
            let Ok(mut q) = lock.lock() else { return };
            while q.waiting.is_empty() && !q.stopped {
                q = match cond.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            (std::mem::take(&mut q.waiting), q.stopped)
        };
        if let Some(target) = batch.iter().map(|(seq, _)| *seq).max() {
            let result = match log.upgrade() {
                Some(log) => log.acknowledge(target).map_err(|e| e.kind()),
                None => Err(AuditErrorKind::Closed),
            };
            for (_, ticket) in batch {
                ticket.complete(result);
            }
        }
        if stopped {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Acknowledges up to the highest seq asked, after a delay; fails from `fail_at` on.
    struct Fake {
        acked: AtomicU64,
        calls: AtomicU64,
        fail_at: u64,
    }

    impl Acknowledge for Fake {
        fn acknowledge(&self, seq: u64) -> Result<(), AuditError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            if seq >= self.fail_at {
                return Err(AuditError::new(AuditErrorKind::Io));
            }
            self.acked.fetch_max(seq, Ordering::SeqCst);
            Ok(())
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(f)
    }

    #[test]
    fn waiters_are_acknowledged_in_batches_with_the_log_result() {
        let log = Arc::new(Fake {
            acked: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            fail_at: 100,
        });
        let f = Flusher::start(Arc::downgrade(&log)).unwrap_or_else(|e| panic!("{e}"));
        let waits: Vec<_> = (1..=50).map(|s| f.wait_for(s)).collect();
        for w in waits {
            assert!(block_on(w).is_ok());
        }
        assert_eq!(log.acked.load(Ordering::SeqCst), 50);
        assert!(
            log.calls.load(Ordering::SeqCst) < 50,
            "requests queued during a flush share the next one"
        );
        let failed = block_on(f.wait_for(100)).err().map(|e| e.kind());
        assert_eq!(failed, Some(AuditErrorKind::Io));
        f.stop();
        // After stop, nothing is queued: refused at once.
        let closed = block_on(f.wait_for(7)).err().map(|e| e.kind());
        assert_eq!(closed, Some(AuditErrorKind::Closed));
    }

    /// Counts its wake-ups.
    struct CountingWaker(AtomicU64);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_waker_of_the_latest_poll_is_the_one_woken() {
        // A task polled again from elsewhere (another worker, a `select!` that moved it) hands
        // a new waker: completion must wake that one, or the task sleeps forever.
        let (a, b) = (
            Arc::new(CountingWaker(AtomicU64::new(0))),
            Arc::new(CountingWaker(AtomicU64::new(0))),
        );
        let (wa, wb) = (Waker::from(Arc::clone(&a)), Waker::from(Arc::clone(&b)));
        let ticket = Arc::new(Ticket::default());
        let mut acked = Acked {
            ticket: Arc::clone(&ticket),
        };
        let mut poll = |w: &Waker| Pin::new(&mut acked).poll(&mut Context::from_waker(w));
        assert!(poll(&wa).is_pending());
        assert!(poll(&wa).is_pending(), "the same waker again");
        assert!(poll(&wb).is_pending());
        ticket.complete(Ok(()));
        assert_eq!(b.0.load(Ordering::SeqCst), 1, "the latest waker is woken");
        assert_eq!(a.0.load(Ordering::SeqCst), 0, "a replaced waker is not");
        assert!(matches!(poll(&wb), Poll::Ready(Ok(()))));
        // A failure reaches the future as its kind.
        let failed = Arc::new(Ticket::default());
        failed.complete(Err(AuditErrorKind::Io));
        let mut acked = Acked { ticket: failed };
        let r = Pin::new(&mut acked).poll(&mut Context::from_waker(&wa));
        assert!(matches!(r, Poll::Ready(Err(e)) if e.kind() == AuditErrorKind::Io));
    }

    #[test]
    fn a_gone_log_closes_waiters() {
        let log = Arc::new(Fake {
            acked: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            fail_at: u64::MAX,
        });
        let f = Flusher::start(Arc::downgrade(&log)).unwrap_or_else(|e| panic!("{e}"));
        drop(log);
        let r = block_on(f.wait_for(1)).err().map(|e| e.kind());
        assert_eq!(r, Some(AuditErrorKind::Closed));
        f.stop();
    }
}
