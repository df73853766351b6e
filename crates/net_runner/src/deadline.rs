//! The overall time limit of `run` and the streams: the one timeout
//! mechanism of the library.
//!
//! A timer task owns the limit. When it expires, the task records that,
//! wakes the pump and starts the graceful stop through the shepherd
//! (SIGTERM, SIGKILL after the kill timeout). Being a task of its own, it
//! fires even while nobody polls the pump: a slow stream consumer cannot
//! stretch the timeout. The pump only asks [`Deadline::passed`] and waits
//! on [`Deadline::expired`]; it keeps no timer of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::ProcessHandle;

#[derive(Debug, Default)]
struct Fired {
    flag: AtomicBool,
    notify: Notify,
}

#[derive(Debug)]
pub(crate) struct Deadline {
    limit: Duration,
    fired: Arc<Fired>,
    timer: JoinHandle<()>,
}

impl Deadline {
    /// Starts the timer for `process`, which it stops at `limit`.
    pub(crate) fn start(limit: Duration, process: ProcessHandle) -> Deadline {
        let fired = Arc::new(Fired::default());
        let timer = tokio::spawn({
            let fired = fired.clone();
            async move {
                tokio::time::sleep(limit).await;
                fired.flag.store(true, Ordering::Release);
                fired.notify.notify_waiters();
                let _ = process.shutdown();
            }
        });
        Deadline {
            limit,
            fired,
            timer,
        }
    }

    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// Whether the limit was reached (and the stop begun).
    pub(crate) fn passed(&self) -> bool {
        self.fired.flag.load(Ordering::Acquire)
    }

    /// Completes once the limit is reached.
    pub(crate) async fn expired(&self) {
        loop {
            let notified = self.fired.notify.notified();
            if self.passed() {
                return;
            }
            notified.await;
        }
    }

    /// The child finished first: the timer must not stop anything.
    pub(crate) fn cancel(&self) {
        self.timer.abort();
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.timer.abort();
    }
}
