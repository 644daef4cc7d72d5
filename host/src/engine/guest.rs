//! What one guest instance owns: its WASI context, resource table, HTTP context, memory limits
//! and the streams its stdout and stderr go to.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::OutboundPolicy;
use super::outbound_view::{HasOutboundView, OutboundView};
use crate::data::{DataView, Grants, HasDataView};

/// The data of one guest store.
pub struct GuestState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) http: WasiHttpCtx,
    pub(super) outbound: OutboundPolicy,
    pub(super) limits: StoreLimits,
    pub(super) grants: Arc<Grants>,
}

impl HasDataView for GuestState {
    fn data_view(&mut self) -> DataView<'_> {
        DataView {
            table: &mut self.table,
            grants: &self.grants,
        }
    }
}

impl HasOutboundView for GuestState {
    fn outbound_view(&mut self) -> OutboundView<'_> {
        OutboundView {
            table: &mut self.table,
            allowed: self.outbound.allowed(),
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Where a component's output goes: the log (`tracing`, tagged with the component id) and the
/// file `<log-dir>/<component>.log`. Cheap to clone; one per component, shared by its instances.
#[derive(Clone)]
pub struct GuestLog {
    component: Arc<str>,
    file: Option<Arc<Mutex<std::fs::File>>>,
    /// Whether lines also go to the log (`--follow` leaves the other components out).
    printed: bool,
}

impl GuestLog {
    /// A log for `component`, appending to `<log_dir>/<component>.log` when `log_dir` is given;
    /// lines are also logged when `printed`.
    pub fn open(component: &str, log_dir: Option<&Path>, printed: bool) -> std::io::Result<Self> {
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
        })
    }

    /// The stream for one of the guest's standard outputs.
    pub fn stream(&self, name: &'static str) -> GuestOutput {
        GuestOutput {
            log: self.clone(),
            name,
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

/// The longest output line logged as one; a longer one is logged in pieces of this size.
const MAX_LINE: usize = 64 << 10;

/// One standard output of one instance. Complete lines go to the log as they arrive; the bytes
/// go to the component's log file unchanged.
#[derive(Clone)]
pub struct GuestOutput {
    log: GuestLog,
    name: &'static str,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    fn write_bytes(&self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(file) = &self.log.file {
            file.lock().expect("log file lock").write_all(bytes)?;
        }
        if !self.log.printed {
            return Ok(());
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
        Ok(())
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        tracing::info!(target: "guest", component = %self.log.component, stream = self.name, "{line}");
    }
}

impl Drop for GuestOutput {
    fn drop(&mut self) {
        // The last clone flushes a final line that had no newline.
        if Arc::strong_count(&self.pending) == 1 {
            let pending = std::mem::take(&mut *self.pending.lock().expect("pending output lock"));
            if !pending.is_empty() {
                self.emit(&pending);
            }
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
        self.write_bytes(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
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
        Poll::Ready(self.write_bytes(buf).map(|()| buf.len()))
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
        let printed = GuestLog::open("c", None, true).unwrap().stream("stdout");
        printed.write_bytes(&vec![b'x'; MAX_LINE + 10]).unwrap();
        assert!(printed.pending.lock().unwrap().is_empty());
        printed.write_bytes(b"partial").unwrap();
        assert_eq!(*printed.pending.lock().unwrap(), b"partial");
        // Output nobody prints is not held at all.
        let unprinted = GuestLog::open("c", None, false).unwrap().stream("stdout");
        unprinted.write_bytes(b"partial").unwrap();
        assert!(unprinted.pending.lock().unwrap().is_empty());
    }
}
