//! The `ledge` binary.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use ledge::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// mimalloc: the host allocates per request (headers, bodies, wasmtime's per-call state), and
/// glibc's allocator was a tenth of the profile under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = match &cli.command {
        Command::Up(args) => args.serve.quiet,
        Command::Node(args) => args.serve.quiet,
        _ => false,
    };
    init_logging(quiet);
    let result = match cli.command {
        Command::Up(args) => block_on(ledge::up::up(*args)),
        Command::Node(args) => block_on(ledge::edge::node::run(*args)),
        Command::Deploy(args) => block_on(ledge::edge::deploy::deploy(args)),
        Command::Status(args) => block_on(ledge::edge::deploy::status(args)),
        Command::Build(args) => ledge::manifest::App::load(&args.from)
            .map_err(anyhow::Error::from)
            .and_then(|app| ledge::builder::build(&app, &args.components)),
        Command::New(args) => {
            ledge::templates::new_app(&args.template, &args.name, args.output.as_deref()).map(
                |dir| {
                    println!(
                        "Created {}. Serve it: cd {} && ledge build && ledge up",
                        dir.display(),
                        dir.display()
                    );
                },
            )
        }
        Command::Add(args) => {
            ledge::templates::add_component(&args.template, &args.name, &args.from).map(|()| {
                println!(
                    "Added `{}` on /{}/... Build and serve: ledge build && ledge up",
                    args.name, args.name
                );
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` on a multi-threaded tokio runtime.
fn block_on(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(command)
}

/// Logs go to stderr; `LEDGE_LOG` (or `RUST_LOG`) overrides the `info` default. With `-q`,
/// component output is left out (it still goes to the log files).
fn init_logging(quiet: bool) {
    let default = if quiet { "info,guest=off" } else { "info" };
    let filter = std::env::var("LEDGE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
