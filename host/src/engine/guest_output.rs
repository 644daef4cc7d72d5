//! Where a guest's stdout and stderr go: the component's log file and, line by line, the log.
//!
//! A guest never waits for either: its writes are queued for one writer thread, whose queue is
//! bounded. When the queue is full, the output is dropped (never blocked on), and the writer
//! says, in the log and in the component's file, how many bytes were lost.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How many writes may wait for the writer thread before further output is dropped.
const QUEUE_DEPTH: usize = 4096;

/// The longest output line logged as one; a longer one is logged in pieces of this size.
const MAX_LINE: usize = 64 << 10;

/// One piece of work for the writer.
enum Chunk {
    /// Bytes one stream wrote.
    Written(Arc<StreamState>, Vec<u8>),
    /// The stream's last clone is gone: log its unfinished line.
    Closed(Arc<StreamState>),
}

/// The queue to the writer thread.
#[derive(Clone)]
struct Queue(SyncSender<Chunk>);

impl Queue {
    /// The process's writer thread, started on first use.
    fn shared() -> Self {
        static QUEUE: OnceLock<Queue> = OnceLock::new();
        QUEUE
            .get_or_init(|| {
                let (queue, chunks) = Self::bounded(QUEUE_DEPTH);
                std::thread::Builder::new()
                    .name("guest-output".into())
                    .spawn(move || write_each(chunks))
                    .expect("the guest output thread starts");
                queue
            })
            .clone()
    }

    /// A queue of `depth` chunks, and its receiving end.
    fn bounded(depth: usize) -> (Self, Receiver<Chunk>) {
        let (sender, receiver) = std::sync::mpsc::sync_channel(depth);
        (Self(sender), receiver)
    }
}

/// The writer thread's work: every chunk in order (for the process's queue, until it ends).
fn write_each(chunks: impl IntoIterator<Item = Chunk>) {
    for chunk in chunks {
        match chunk {
            Chunk::Written(stream, bytes) => stream.write(&bytes),
            Chunk::Closed(stream) => stream.close(),
        }
    }
}

/// Where a component's output goes: the file `<log-dir>/<component>.log` and, when `printed`,
/// the log (`tracing`, tagged with the component id). Cheap to clone; one per component,
/// shared by its instances.
#[derive(Clone)]
pub struct GuestLog {
    component: Arc<str>,
    file: Option<Arc<Mutex<std::fs::File>>>,
    /// Whether lines also go to the log (`--follow` leaves the other components out).
    printed: bool,
    /// Bytes dropped because the queue was full, not yet reported.
    dropped: Arc<AtomicU64>,
    queue: Queue,
}

impl GuestLog {
    /// A log for `component`, appending to `<log_dir>/<component>.log` when `log_dir` is given;
    /// lines are also logged when `printed`.
    pub fn open(component: &str, log_dir: Option<&Path>, printed: bool) -> std::io::Result<Self> {
        Self::open_with(component, log_dir, printed, Queue::shared())
    }

    fn open_with(
        component: &str,
        log_dir: Option<&Path>,
        printed: bool,
        queue: Queue,
    ) -> std::io::Result<Self> {
        let file = match log_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let path: PathBuf = dir.join(format!("{component}.log"));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                Some(Arc::new(Mutex::new(file)))
            }
            None => None,
        };
        Ok(Self {
            component: component.into(),
            file,
            printed,
            dropped: Arc::default(),
            queue,
        })
    }

    /// The stream for one of the guest's standard outputs.
    pub fn stream(&self, name: &'static str) -> GuestOutput {
        GuestOutput {
            handle: Arc::new(Handle(Arc::new(StreamState {
                log: self.clone(),
                name,
                pending: Mutex::new(Vec::new()),
                queued: AtomicBool::new(false),
            }))),
        }
    }
}

/// One standard output of one instance, as the writer thread keeps it.
struct StreamState {
    log: GuestLog,
    name: &'static str,
    /// The start of a line whose end has not arrived yet.
    pending: Mutex<Vec<u8>>,
    /// Whether any bytes were queued: only then can a last line be unfinished at the close.
    queued: AtomicBool,
}

impl StreamState {
    /// Writes `bytes` to the file and their complete lines to the log (on the writer thread).
    fn write(&self, bytes: &[u8]) {
        self.report_dropped();
        if let Some(file) = &self.log.file {
            let written = file.lock().expect("log file lock").write_all(bytes);
            if let Err(error) = written {
                tracing::warn!(component = %self.log.component, "cannot write its log file: {error}");
            }
        }
        if !self.log.printed {
            return;
        }
        let mut pending = self.pending.lock().expect("pending output lock");
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        // A guest that never ends its line must not grow the host's memory without bound.
        if pending.len() > MAX_LINE {
            let line = std::mem::take(&mut *pending);
            self.emit(&line);
        }
    }

    /// Logs the unfinished last line, if any.
    fn close(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("pending output lock"));
        if !pending.is_empty() {
            self.emit(&pending);
        }
    }

    /// Says how much output was dropped since the last report, if any.
    fn report_dropped(&self) {
        let dropped = self.log.dropped.swap(0, Ordering::Relaxed);
        if dropped == 0 {
            return;
        }
        let message = format!("{dropped} bytes of output dropped: the output queue was full");
        tracing::warn!(component = %self.log.component, "{message}");
        if let Some(file) = &self.log.file {
            let _ = writeln!(file.lock().expect("log file lock"), "[ledge] {message}");
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        tracing::info!(target: "guest", component = %self.log.component, stream = self.name, "{line}");
    }
}

/// The handle a guest writes one standard output through; it only queues the bytes.
#[derive(Clone)]
pub struct GuestOutput {
    handle: Arc<Handle>,
}

/// What the clones of one [`GuestOutput`] share. The queued chunks hold the stream's state, not
/// this, so dropping the last clone drops it whatever is still queued.
struct Handle(Arc<StreamState>);

impl Drop for Handle {
    fn drop(&mut self) {
        // The writer logs a final line that had no newline, after everything written before.
        // A stream that queued nothing has no such line: most instances print nothing, and
        // waking the writer for each of them would cost every request a thread switch.
        if self.0.queued.load(Ordering::Relaxed) {
            let _ = self.0.log.queue.0.try_send(Chunk::Closed(self.0.clone()));
        }
    }
}

impl GuestOutput {
    /// Queues `bytes` for the writer, or counts them as dropped when the queue is full.
    fn queue(&self, bytes: &[u8]) {
        let state = &self.handle.0;
        let chunk = Chunk::Written(state.clone(), bytes.to_vec());
        match state.log.queue.0.try_send(chunk) {
            Ok(()) => state.queued.store(true, Ordering::Relaxed),
            Err(TrySendError::Full(_)) => {
                state
                    .log
                    .dropped
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            // The writer is gone only when the process is ending.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.queue(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1024 * 1024)
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.queue(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_held_back_for_a_line_end_stays_bounded() {
        let (queue, _chunks) = Queue::bounded(1);
        let printed = GuestLog::open_with("c", None, true, queue.clone()).unwrap();
        let state = printed.stream("stdout").handle.0.clone();
        state.write(&vec![b'x'; MAX_LINE + 10]);
        assert!(state.pending.lock().unwrap().is_empty());
        state.write(b"partial");
        assert_eq!(*state.pending.lock().unwrap(), b"partial");
        // Output nobody prints is not held at all.
        let unprinted = GuestLog::open_with("c", None, false, queue).unwrap();
        let state = unprinted.stream("stdout").handle.0.clone();
        state.write(b"partial");
        assert!(state.pending.lock().unwrap().is_empty());
    }

    #[test]
    fn the_last_handle_closes_the_stream_after_what_it_queued() {
        let (queue, chunks) = Queue::bounded(8);
        let log = GuestLog::open_with("c", None, true, queue).unwrap();
        let mut stdout = log.stream("stdout");
        let copy = stdout.clone();
        OutputStream::write(&mut stdout, Bytes::from("no newline")).unwrap();
        drop(stdout);
        assert_eq!(chunks.try_iter().count(), 1, "a clone is still open");
        drop(copy);
        let queued: Vec<Chunk> = chunks.try_iter().collect();
        assert!(matches!(queued.as_slice(), [Chunk::Closed(_)]));
    }

    #[test]
    fn a_stream_that_wrote_nothing_does_not_wake_the_writer() {
        let (queue, chunks) = Queue::bounded(8);
        let log = GuestLog::open_with("c", None, true, queue).unwrap();
        drop(log.stream("stdout"));
        assert_eq!(chunks.try_iter().count(), 0);
    }

    #[test]
    fn a_full_queue_drops_output_without_blocking_and_the_writer_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        // No writer is draining this queue of one: the second and third writes are dropped.
        let (queue, chunks) = Queue::bounded(1);
        let log = GuestLog::open_with("chatty", Some(dir.path()), false, queue).unwrap();
        let mut stdout = log.stream("stdout");
        for line in ["kept\n", "dropped\n", "dropped too\n"] {
            OutputStream::write(&mut stdout, Bytes::from(line)).unwrap();
        }
        assert_eq!(log.dropped.load(Ordering::Relaxed), 20);
        drop(stdout);
        drop(log);
        // The writer writes what was queued and says what was lost.
        write_each(chunks.try_iter());
        let file = std::fs::read_to_string(dir.path().join("chatty.log")).unwrap();
        assert_eq!(
            file,
            "[ledge] 20 bytes of output dropped: the output queue was full\nkept\n"
        );
    }
}
