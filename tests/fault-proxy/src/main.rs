//! A TCP proxy on loopback that stands for the network between an edge region and the hub,
//! which this machine's kernel cannot shape (it has no `netem`):
//!
//! ```text
//! fault-proxy <listen address> <upstream address> [delay in ms]
//! ```
//!
//! Every byte is held for the one-way delay in each direction before it is passed on, so the
//! link keeps its throughput and gains latency. Commands on standard input, one per line, change
//! the link while it runs (the end of input changes nothing):
//!
//! - `delay <ms>`: the one-way delay from now on;
//! - `answers <ms>`: a delay from now on for the bytes coming back from upstream only, on
//!   top of the one-way delay (requests arrive, their answers come late);
//! - `cut`: a partition: every open connection is closed and new ones are closed at once;
//! - `heal`: connections are accepted and passed on again.
//!
//! Each command is acknowledged with a line `ok` on standard output once it has taken effect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The link's state, shared by every connection.
struct Link {
    /// The one-way delay in milliseconds.
    delay_ms: AtomicU64,
    /// The further delay of bytes coming back from upstream, in milliseconds.
    answers_ms: AtomicU64,
    /// Whether the link is cut; a change closes every open connection.
    cut: watch::Sender<bool>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fault-proxy <listen address> <upstream address> [delay in ms]";
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let delay_ms = match args.next().map(|ms| ms.parse()) {
        None => 0,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(&listen).await?;
    let link = Arc::new(Link {
        delay_ms: AtomicU64::new(delay_ms),
        answers_ms: AtomicU64::new(0),
        cut: watch::Sender::new(false),
    });
    tokio::spawn(obey(link.clone()));
    loop {
        let (client, _) = listener.accept().await?;
        if *link.cut.borrow() {
            continue;
        }
        let (link, upstream) = (link.clone(), upstream.clone());
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let mut cut = link.cut.subscribe();
            tokio::select! {
                _ = relay(client, server, &link) => {}
                _ = cut.wait_for(|cut| *cut) => {}
            }
        });
    }
}

/// Applies the commands read from standard input.
async fn obey(link: Arc<Link>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next().map(str::parse::<u64>)) {
            (Some("delay"), Some(Ok(ms))) => link.delay_ms.store(ms, Ordering::Relaxed),
            (Some("answers"), Some(Ok(ms))) => link.answers_ms.store(ms, Ordering::Relaxed),
            (Some("cut"), None) => {
                link.cut.send_replace(true);
            }
            (Some("heal"), None) => {
                link.cut.send_replace(false);
            }
            _ => {
                eprintln!(
                    "fault-proxy: unknown command `{line}` (delay <ms>, answers <ms>, cut, heal)"
                );
                continue;
            }
        }
        println!("ok");
    }
}

/// Passes bytes both ways until either side closes.
async fn relay(client: TcpStream, server: TcpStream, link: &Link) {
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = one_way(client_read, server_write, link, None) => {}
        _ = one_way(server_read, client_write, link, Some(&link.answers_ms)) => {}
    }
}

/// Reads from `from` and writes each chunk to `to` once it has been held for the delay, and
/// for the delay in `more_ms` too if given. Chunks leave in the order they came.
async fn one_way(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    link: &Link,
    more_ms: Option<&AtomicU64>,
) {
    let (held, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = from.read(&mut buffer).await {
            let more_ms = more_ms.map_or(0, |ms| ms.load(Ordering::Relaxed));
            let delay = Duration::from_millis(link.delay_ms.load(Ordering::Relaxed) + more_ms);
            if held
                .send((Instant::now() + delay, buffer[..read].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
