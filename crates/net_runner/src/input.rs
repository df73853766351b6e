//! What feeds a child's stdin in `run` and the streams, and the feeding.

use std::fmt;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::pipe::ChildStdin;

/// Bytes for the child's stdin, written concurrently with reading its
/// output, then stdin is closed.
///
/// Built by [`Command::input`](crate::Command::input),
/// [`input_stream`](crate::Command::input_stream) and
/// [`input_reader`](crate::Command::input_reader).
///
/// ```
/// let input = net_runner::Input::Bytes("hello".into());
/// assert_eq!(format!("{input:?}"), "Input::Bytes(5 bytes)");
/// ```
pub enum Input {
    /// A buffer.
    Bytes(Bytes),
    /// A stream of buffers; an `Err` item aborts the run with that error.
    Stream(Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>),
    /// Anything readable.
    Reader(Pin<Box<dyn AsyncRead + Send>>),
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Bytes(b) => write!(f, "Input::Bytes({} bytes)", b.len()),
            Input::Stream(_) => write!(f, "Input::Stream(..)"),
            Input::Reader(_) => write!(f, "Input::Reader(..)"),
        }
    }
}

/// Writes all of `input` to stdin, then closes it (on a terminal: end of
/// file through the line discipline). A child that stops
/// reading (closes stdin or exits) is not an error.
pub(crate) async fn feed(mut stdin: ChildStdin, input: Input) -> io::Result<()> {
    let result = async {
        match input {
            Input::Bytes(b) => stdin.write_all(&b).await,
            Input::Stream(mut s) => {
                while let Some(buf) = s.next().await {
                    stdin.write_all(&buf?).await?;
                }
                Ok(())
            }
            Input::Reader(mut r) => {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = r.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    stdin.write_all(&buf[..n]).await?;
                }
            }
        }
    }
    .await;
    // On a terminal, end of file is characters to write: wait for room.
    let result = match result {
        Ok(()) => stdin.close().await,
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
