//! Where a daemon's output goes. It is always drained: the program never
//! blocks on a full pipe, unless a channel with [`Overflow::Block`] asks
//! for exactly that.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::Chunk;

/// Lines longer than this are handed out in pieces of this size.
pub(crate) const MAX_LINE: usize = crate::DEFAULT_MAX_LINE_LENGTH;

/// What a daemon does with its program's stdout and stderr.
///
/// ```
/// use net_runner::daemon::{Framing, OutputSink, Overflow};
/// let _ = OutputSink::discard();
/// let _ = OutputSink::log(); // the default
/// let _ = OutputSink::lines(|line| println!("{line:?}"));
/// let (_sink, _rx) = OutputSink::channel(64, Overflow::DropOldest, Framing::Lines);
/// ```
pub struct OutputSink(pub(crate) SinkKind);

pub(crate) enum SinkKind {
    Discard,
    Log,
    Lines(Box<dyn FnMut(Chunk) + Send>),
    Chunks(Box<dyn FnMut(Chunk) + Send>),
    Channel(Arc<Queue>, Framing),
}

impl fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.0 {
            SinkKind::Discard => "OutputSink::Discard",
            SinkKind::Log => "OutputSink::Log",
            SinkKind::Lines(_) => "OutputSink::Lines",
            SinkKind::Chunks(_) => "OutputSink::Chunks",
            SinkKind::Channel(..) => "OutputSink::Channel",
        })
    }
}

impl Default for OutputSink {
    fn default() -> Self {
        OutputSink::log()
    }
}

/// How a channel or callback receives output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// One item per line, without its `\n` (or `\r\n`); a last line without
    /// a newline comes when the run ends; a line longer than 1 MiB comes in
    /// 1 MiB pieces.
    Lines,
    /// The chunks as read, byte for byte (what `netrunner daemon` passes
    /// through).
    Chunks,
}

/// What a channel does when its receiver is slow and the channel is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Stop reading the program's output until there is room: the program
    /// blocks in `write` once its pipe is full (backpressure). The daemon's
    /// bookkeeping goes on meanwhile: exits are recorded, `status`, `stop`,
    /// `signal` and `write` work. A run's output is delivered in full before
    /// the next run starts. A stop never waits for the receiver: from the
    /// stop on, a full channel drops the oldest item instead.
    Block,
    /// Never wait: when the channel is full the oldest item is dropped and
    /// counted ([`DaemonOutput::dropped`]).
    DropOldest,
}

impl OutputSink {
    /// Read and thrown away.
    ///
    /// ```
    /// let _ = net_runner::daemon::OutputSink::discard();
    /// ```
    pub fn discard() -> Self {
        OutputSink(SinkKind::Discard)
    }

    /// Logged line by line through `tracing` (target `net_runner::daemon`,
    /// field `daemon` = the name): stdout at INFO, stderr at WARN. The
    /// default.
    ///
    /// ```
    /// let _ = net_runner::daemon::OutputSink::log();
    /// ```
    pub fn log() -> Self {
        OutputSink(SinkKind::Log)
    }

    /// `f` is called with every line ([`Framing::Lines`]), tagged
    /// [`Chunk::Stdout`] or [`Chunk::Stderr`]. It runs on the daemon's
    /// task: a slow callback slows the reading (and so the program).
    ///
    /// ```
    /// use net_runner::Chunk;
    /// let _ = net_runner::daemon::OutputSink::lines(|line| {
    ///     if let Chunk::Stderr(text) = line {
    ///         eprintln!("{}", String::from_utf8_lossy(&text));
    ///     }
    /// });
    /// ```
    pub fn lines(f: impl FnMut(Chunk) + Send + 'static) -> Self {
        OutputSink(SinkKind::Lines(Box::new(f)))
    }

    /// `f` is called with every chunk as read ([`Framing::Chunks`]).
    ///
    /// ```
    /// let _ = net_runner::daemon::OutputSink::chunks(|chunk| drop(chunk));
    /// ```
    pub fn chunks(f: impl FnMut(Chunk) + Send + 'static) -> Self {
        OutputSink(SinkKind::Chunks(Box::new(f)))
    }

    /// A bounded channel of `capacity` items (at least 1); `overflow` says
    /// what happens when the receiver is slow.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use net_runner::{daemon::{Daemon, Framing, OutputSink, Overflow, Restart}, Chunk, Command};
    /// let (sink, mut rx) = OutputSink::channel(16, Overflow::Block, Framing::Lines);
    /// let mut cmd = Command::new("echo");
    /// cmd.arg("hello");
    /// let d = Daemon::builder(cmd).restart(Restart::Never).output(sink).start().await?;
    /// assert_eq!(rx.recv().await, Some(Chunk::Stdout("hello".into())));
    /// assert!(d.wait().await?.last_exit.unwrap().success());
    /// assert_eq!(rx.recv().await, None); // the daemon ended
    /// # Ok(()) }
    /// ```
    pub fn channel(capacity: usize, overflow: Overflow, framing: Framing) -> (Self, DaemonOutput) {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            capacity: capacity.max(1),
            overflow: Mutex::new(overflow),
            dropped: AtomicU64::new(0),
            item: Notify::new(),
            space: Notify::new(),
        });
        (
            OutputSink(SinkKind::Channel(queue.clone(), framing)),
            DaemonOutput { queue },
        )
    }

    pub(crate) fn framing(&self) -> Option<Framing> {
        match &self.0 {
            SinkKind::Discard => None,
            SinkKind::Log | SinkKind::Lines(_) => Some(Framing::Lines),
            SinkKind::Chunks(_) => Some(Framing::Chunks),
            SinkKind::Channel(_, framing) => Some(*framing),
        }
    }
}

/// The receiving end of [`OutputSink::channel`].
#[derive(Debug)]
pub struct DaemonOutput {
    queue: Arc<Queue>,
}

impl DaemonOutput {
    /// The next item; `None` once the daemon has ended and everything was
    /// received.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an item is taken only when the future completes.
    pub async fn recv(&mut self) -> Option<Chunk> {
        loop {
            let notified = self.queue.item.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.queue.lock();
                if let Some(item) = state.items.pop_front() {
                    self.queue.space.notify_one();
                    return Some(item);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// An item if one is waiting, without waiting.
    ///
    /// ```
    /// use net_runner::daemon::{Framing, OutputSink, Overflow};
    /// let (_sink, mut rx) = OutputSink::channel(4, Overflow::Block, Framing::Lines);
    /// assert_eq!(rx.try_recv(), None);
    /// ```
    pub fn try_recv(&mut self) -> Option<Chunk> {
        let item = self.queue.lock().items.pop_front();
        if item.is_some() {
            self.queue.space.notify_one();
        }
        item
    }

    /// How many items were dropped because the channel was full
    /// ([`Overflow::DropOldest`], or any channel once a stop began).
    ///
    /// ```
    /// use net_runner::daemon::{Framing, OutputSink, Overflow};
    /// let (_sink, rx) = OutputSink::channel(4, Overflow::DropOldest, Framing::Lines);
    /// assert_eq!(rx.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Relaxed)
    }
}

impl Drop for DaemonOutput {
    fn drop(&mut self) {
        // Nobody will read: never block the program for us again.
        self.queue.lock().receiver_gone = true;
        self.queue.space.notify_one();
    }
}

/// A bounded queue with one producer (the daemon) and one consumer.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    capacity: usize,
    overflow: Mutex<Overflow>,
    dropped: AtomicU64,
    /// An item was pushed, or the queue closed.
    item: Notify,
    /// An item was taken, or the receiver went away.
    space: Notify,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.capacity)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Chunk>,
    /// The daemon ended: no more items.
    closed: bool,
    receiver_gone: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn overflow(&self) -> Overflow {
        *self.overflow.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pushes if there is room (or nobody receives: then the item is
    /// thrown away); gives the item back when full.
    fn try_push(&self, item: Chunk) -> Result<(), Chunk> {
        let mut state = self.lock();
        if state.receiver_gone {
            return Ok(());
        }
        if state.items.len() >= self.capacity {
            return Err(item);
        }
        state.items.push_back(item);
        drop(state);
        self.item.notify_one();
        Ok(())
    }

    /// Pushes, dropping the oldest item when full.
    fn push_dropping(&self, item: Chunk) {
        let mut state = self.lock();
        if state.receiver_gone {
            return;
        }
        while state.items.len() >= self.capacity {
            state.items.pop_front();
            self.dropped.fetch_add(1, Relaxed);
        }
        state.items.push_back(item);
        drop(state);
        self.item.notify_one();
    }

    /// Waits until an item could be pushed.
    async fn room(&self) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                if state.receiver_gone || state.items.len() < self.capacity {
                    return;
                }
            }
            notified.await;
        }
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.item.notify_one();
    }
}

/// Splits one stream's chunks into lines.
#[derive(Debug, Default)]
pub(crate) struct LineBuf {
    buf: BytesMut,
}

impl LineBuf {
    /// Appends `chunk` and calls `each` for every complete line (without
    /// its `\n` / `\r\n`), and for 1 MiB pieces of an over-long line.
    pub(crate) fn push(&mut self, chunk: &[u8], mut each: impl FnMut(Bytes)) {
        self.buf.extend_from_slice(chunk);
        loop {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut line = self.buf.split_to(i + 1).freeze();
                    line.truncate(i);
                    if line.last() == Some(&b'\r') {
                        line.truncate(i - 1);
                    }
                    each(line);
                }
                None if self.buf.len() >= MAX_LINE => each(self.buf.split_to(MAX_LINE).freeze()),
                None => return,
            }
        }
    }

    /// The last line, if it had no newline.
    pub(crate) fn flush(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

/// The daemon's side of the sink: frames and hands output on.
pub(crate) struct Delivery {
    sink: OutputSink,
    name: Arc<str>,
    out: LineBuf,
    err: LineBuf,
    /// Items a [`Overflow::Block`] channel had no room for yet.
    pending: VecDeque<Chunk>,
}

impl Delivery {
    pub(crate) fn new(sink: OutputSink, name: Arc<str>) -> Self {
        Delivery {
            sink,
            name,
            out: LineBuf::default(),
            err: LineBuf::default(),
            pending: VecDeque::new(),
        }
    }

    /// Takes a chunk read from the program.
    pub(crate) fn accept(&mut self, chunk: Chunk) {
        match self.sink.framing() {
            None => {}
            Some(Framing::Chunks) => self.emit(chunk),
            Some(Framing::Lines) => {
                let mut lines = Vec::new();
                match &chunk {
                    Chunk::Stdout(b) => self.out.push(b, |l| lines.push(Chunk::Stdout(l))),
                    Chunk::Stderr(b) => self.err.push(b, |l| lines.push(Chunk::Stderr(l))),
                }
                for line in lines {
                    self.emit(line);
                }
            }
        }
    }

    /// The run ended: its last lines without a newline.
    pub(crate) fn end_of_run(&mut self) {
        if let Some(l) = self.out.flush() {
            self.emit(Chunk::Stdout(l));
        }
        if let Some(l) = self.err.flush() {
            self.emit(Chunk::Stderr(l));
        }
    }

    fn emit(&mut self, item: Chunk) {
        match &mut self.sink.0 {
            SinkKind::Discard => {}
            SinkKind::Log => match &item {
                Chunk::Stdout(l) => {
                    tracing::info!(daemon = %self.name, stream = "stdout", "{}", String::from_utf8_lossy(l));
                }
                Chunk::Stderr(l) => {
                    tracing::warn!(daemon = %self.name, stream = "stderr", "{}", String::from_utf8_lossy(l));
                }
            },
            SinkKind::Lines(f) | SinkKind::Chunks(f) => f(item),
            SinkKind::Channel(queue, _) => {
                if !self.pending.is_empty() {
                    self.pending.push_back(item);
                } else if queue.overflow() == Overflow::DropOldest {
                    queue.push_dropping(item);
                } else if let Err(item) = queue.try_push(item) {
                    self.pending.push_back(item);
                }
            }
        }
    }

    /// Output is waiting for a slow receiver: read no more until it went.
    pub(crate) fn blocked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Delivers what is pending, waiting for room. Cancel-safe: an item
    /// leaves `pending` only once pushed.
    pub(crate) async fn deliver(&mut self) {
        let SinkKind::Channel(queue, _) = &self.sink.0 else {
            return;
        };
        while let Some(item) = self.pending.front() {
            match queue.try_push(item.clone()) {
                Ok(()) => {
                    self.pending.pop_front();
                }
                Err(_) => queue.room().await,
            }
        }
    }

    /// A stop began: from now on a full channel drops its oldest items, and
    /// what was pending goes in that way.
    pub(crate) fn stop_blocking(&mut self) {
        if let SinkKind::Channel(queue, _) = &self.sink.0 {
            *queue.overflow.lock().unwrap_or_else(|p| p.into_inner()) = Overflow::DropOldest;
            for item in self.pending.drain(..) {
                queue.push_dropping(item);
            }
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let SinkKind::Channel(queue, _) = &self.sink.0 {
            queue.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks() {
        let mut buf = LineBuf::default();
        let mut lines = Vec::new();
        buf.push(b"a\r\nb", |l| lines.push(l));
        buf.push(b"c\n\nd", |l| lines.push(l));
        assert_eq!(lines, ["a", "bc", ""]);
        assert_eq!(buf.flush().as_deref(), Some(&b"d"[..]));
        assert_eq!(buf.flush(), None);
        let long = vec![b'x'; MAX_LINE + 3];
        let mut pieces = Vec::new();
        buf.push(&long, |l| pieces.push(l.len()));
        assert_eq!(pieces, [MAX_LINE]);
        assert_eq!(buf.flush().map(|b| b.len()), Some(3));
    }

    #[tokio::test]
    async fn drop_oldest_counts_and_block_waits() {
        let (sink, mut rx) = OutputSink::channel(2, Overflow::DropOldest, Framing::Chunks);
        let mut d = Delivery::new(sink, "t".into());
        for i in 0..5u8 {
            d.accept(Chunk::Stdout(Bytes::from(vec![i])));
        }
        assert!(!d.blocked());
        assert_eq!(rx.dropped(), 3);
        assert_eq!(rx.recv().await, Some(Chunk::Stdout(Bytes::from(vec![3]))));
        let (sink, mut rx) = OutputSink::channel(1, Overflow::Block, Framing::Lines);
        let mut d = Delivery::new(sink, "t".into());
        d.accept(Chunk::Stdout("a\nb\nc".into()));
        assert!(d.blocked());
        assert_eq!(rx.recv().await, Some(Chunk::Stdout("a".into())));
        d.deliver().await; // "b" goes in
        assert!(!d.blocked());
        d.end_of_run(); // "c" waits behind "b"
        assert!(d.blocked());
        assert_eq!(rx.try_recv(), Some(Chunk::Stdout("b".into())));
        d.deliver().await;
        assert_eq!(rx.try_recv(), Some(Chunk::Stdout("c".into())));
        assert_eq!(rx.dropped(), 0);
        drop(d);
        assert_eq!(rx.recv().await, None);
    }
}
