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
    let quiet = matches!(&cli.command, Command::Up(args) if args.quiet);
    init_logging(quiet);
    let result = match cli.command {
        Command::Up(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(ledge::up::up(*args))),
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
