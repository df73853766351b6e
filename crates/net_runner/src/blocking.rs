//! Running futures to completion for callers without a tokio runtime.

use std::future::Future;

use crate::Error;

/// Runs `fut` on a private current-thread runtime. Called from inside a
/// runtime (where blocking it would panic), the work moves to a fresh thread.
pub(crate) fn block_on<F, T>(fut: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send,
    T: Send,
{
    let run = move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?
            .block_on(fut)
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(run)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        run()
    }
}
