//! The `ledge` command line: `ledge up`, `ledge build`, `ledge new` and `ledge add`, with the
//! flags Spin users type; `ledge node`, `ledge deploy` and `ledge status` for the edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// ledge: serve Spin apps (wasi:http components) on a WebAssembly host.
#[derive(Debug, Parser)]
#[command(name = "ledge", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve an app: every `[[trigger.http]]` route of its manifest.
    Up(Box<UpArgs>),
    /// Run each component's `build.command`.
    Build(BuildArgs),
    /// Start a new app from a template (`http-rust`, `static-site`).
    New(NewArgs),
    /// Add a component from a template to an app, on the route `/<name>/...`.
    Add(AddArgs),
    /// Serve every app deployed to a NATS cluster, as one edge node of a region.
    Node(Box<NodeArgs>),
    /// Deploy an app to every node: pack it, upload it, record it, and wait until every live
    /// node serves it.
    Deploy(DeployArgs),
    /// Show the nodes, their regions and the app versions each serves.
    Status(StatusArgs),
}

/// `ledge new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The template.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::templates::names()))]
    pub template: String,
    /// The app's name (kebab case), also its component's.
    pub name: String,
    /// Where to create the app (default `./<name>`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `ledge add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The template.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::templates::names()))]
    pub template: String,
    /// The component's name (kebab case); its files go in `<app dir>/<name>/`.
    pub name: String,
    /// The app: a manifest or a directory holding `spin.toml`.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    pub from: PathBuf,
}

/// `ledge up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The app: a manifest, a directory holding `spin.toml`, or a bare `.wasm`. Repeat it to
    /// serve several apps on one listener, each answering the `domains` its manifest lists.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    pub from: Vec<PathBuf>,

    /// Build the components (`ledge build`) before serving.
    #[arg(long)]
    pub build: bool,

    /// Set a key in the `default` store before serving (`KEY=VALUE`; repeatable).
    #[arg(long = "key-value", value_parser = parse_key_value)]
    pub key_values: Vec<(String, String)>,

    /// SQL to run on the `default` database before serving, or `@file.sql[:database]`, a
    /// migration applied once (repeatable, in order).
    #[arg(long = "sqlite")]
    pub sqlite: Vec<String>,

    /// Where ledge keeps its state (compile cache, logs, data, fetched remote sources); default
    /// `.ledge/` next to the manifest.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,

    /// How the apps are served.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// How apps are served, by `ledge up` and `ledge node` alike: the listener, limits, timeouts,
/// observability and what every component gets.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Set an environment variable for every component (`KEY=VALUE`; repeatable).
    #[arg(short = 'e', long = "env", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,

    /// Backends for key-value stores and databases, and variable providers (Spin's
    /// `runtime-config.toml` format).
    #[arg(long)]
    pub runtime_config_file: Option<PathBuf>,

    /// Set an app variable: `KEY=VALUE`, or `@file.json` / `@file.toml` (repeatable).
    #[arg(long = "variable")]
    pub variables: Vec<String>,

    /// Where component output is written (`<component>.log`); default `<state-dir>/logs`.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,

    /// Do not print component output (it is still written to the log directory).
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Print the output of this component only (repeatable); the others' output still goes
    /// to the log directory.
    #[arg(long = "follow", value_name = "COMPONENT")]
    pub follow: Vec<String>,

    /// Mount `files` directories directly rather than through a copy. ledge always mounts
    /// directories directly (read-only), so this is accepted for Spin's command lines.
    #[arg(long)]
    pub direct_mounts: bool,

    /// Allocate each instance on demand instead of from the pooling allocator.
    #[arg(long)]
    pub disable_pooling: bool,

    /// Compile every component afresh instead of using the compile cache.
    #[arg(long)]
    pub disable_cache: bool,

    /// A component at least this big (e.g. `1MiB`) that is not in the compile cache is
    /// compiled by the baseline compiler (Winch: about four times faster to compile, slower
    /// to run) and served at once, while its optimized code compiles in the background and
    /// then takes over; `off` always waits for the optimized code.
    #[arg(long, value_name = "SIZE|off", value_parser = parse_size_or_off, default_value = "1MiB")]
    pub baseline_compile_above: u64,

    /// Name the guests' compiled code for a profiler: `perfmap` writes
    /// `/tmp/perf-<pid>.map` for `perf report`, `jitdump` writes a `jit-<pid>.dump` for
    /// `perf inject --jit`.
    #[arg(long, value_enum)]
    pub profile: Option<GuestProfiler>,

    /// A wasmtime cache configuration file (Spin's `--cache`): its `[cache]` `directory` is
    /// where compiled components are kept, and `enabled = false` turns the cache off.
    #[arg(long, value_name = "FILE", conflicts_with = "disable_cache")]
    pub cache: Option<PathBuf>,

    /// The longest a request may run in a component (e.g. `30s`, `500ms`); over it: 504.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub request_timeout: Option<Duration>,

    /// The most memory one instance may use (e.g. `128MiB`, `1GB`, or bytes).
    #[arg(long, value_parser = parse_size)]
    pub max_instance_memory: Option<u64>,

    /// The largest request body accepted (e.g. `10MiB`); over it: 413.
    #[arg(long, value_parser = parse_size, default_value = "10MiB")]
    pub max_request_body_size: u64,

    /// A network whose `Forwarded` and `X-Forwarded-For` headers are believed (the load
    /// balancers in front); repeat for several. Replaces every app's `trusted_proxies`.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_network)]
    pub trusted_proxies: Vec<String>,

    /// How long a connection may take to send a request head, counted from when it opens or
    /// from the first byte after its previous response.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub header_read_timeout: Duration,

    /// How long a keep-alive connection may stay idle after a response before it is closed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,

    /// The largest request head (request line and headers) accepted (e.g. `64KiB`); over it:
    /// 431.
    #[arg(long, value_parser = parse_size, default_value = "64KiB")]
    pub max_request_head: u64,

    /// The most connections open at once; past it, new connections wait until one closes.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), default_value = "4096")]
    pub max_connections: u64,

    /// Requests one instance may serve before it is dropped (default: 1 for p2, 128 for p3;
    /// a component's `tool.ledge` setting wins).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_instance_reuse_count: Option<u64>,

    /// Requests one p3 instance may serve at once (default 16; a component's `tool.ledge`
    /// setting wins).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_instance_concurrent_reuse_count: Option<u64>,

    /// Serve Prometheus metrics on `/metrics` at this address (e.g. `127.0.0.1:9090`), apart
    /// from the app's listener.
    #[arg(long)]
    pub admin_listen: Option<std::net::SocketAddr>,

    /// Export OpenTelemetry traces over OTLP/HTTP to this collector (e.g.
    /// `http://127.0.0.1:4318`; `/v1/traces` is appended).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// PEM certificate chain: serve HTTPS (with `--tls-key`).
    #[arg(long, requires = "tls_key", env = "SPIN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for `--tls-cert`.
    #[arg(long, requires = "tls_cert", env = "SPIN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle: require client certificates issued by it (mutual TLS); the verified
    /// subject reaches guests as `ledge-auth-subject`.
    #[arg(long, requires = "tls_cert", env = "LEDGE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
}

/// Where the NATS cluster is, for `ledge node`, `ledge deploy` and `ledge status`.
#[derive(Debug, Args)]
pub struct NatsArgs {
    /// A NATS server of the cluster (repeatable; the client fails over between them).
    #[arg(
        long = "nats",
        env = "LEDGE_NATS_URL",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    pub urls: Vec<String>,

    /// A NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "LEDGE_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// A PEM CA bundle for `tls://` NATS servers, in addition to the system's roots.
    #[arg(long, env = "LEDGE_NATS_CA")]
    pub nats_ca: Option<PathBuf>,

    /// The hub's JetStream domain, when the server connected to is a region's leaf with a
    /// JetStream domain of its own (see deploy/nats/).
    #[arg(long, env = "LEDGE_HUB_DOMAIN")]
    pub hub_domain: Option<String>,
}

/// `ledge node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The region this node serves (e.g. `eu-west`); nodes of one region share its replicas.
    #[arg(long, env = "LEDGE_REGION")]
    pub region: String,

    /// This node's name, unique in the cluster (default: `<region>-<host name>`).
    #[arg(long)]
    pub name: Option<String>,

    /// Where the node keeps its bundles, compile cache, logs and data; with them a restarted
    /// node serves its apps before it reaches NATS.
    #[arg(long, default_value = ".ledge-node")]
    pub state_dir: PathBuf,

    /// The NATS cluster.
    #[command(flatten)]
    pub nats: NatsArgs,

    /// How many log entries of a replicated store or database its writer lets pass before it
    /// snapshots the file into the object store and drops the entries the snapshot holds; a
    /// new node starts from the snapshot instead of replaying the whole log.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), default_value = "10000")]
    pub snapshot_every: u64,

    /// How the apps are served.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `ledge deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The app: a manifest or a directory holding `spin.toml`.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    pub from: PathBuf,

    /// Build the components (`ledge build`) before packing them.
    #[arg(long)]
    pub build: bool,

    /// A schema migration to deploy with this version, as `@file.sql` (database `default`)
    /// or `@file.sql:<database>`; repeatable, run in order. Each runs once per database (by
    /// file name and checksum), and every node has it applied to its copy before it serves
    /// the version.
    #[arg(long = "sqlite", value_name = "@FILE[:DATABASE]")]
    pub sqlite: Vec<String>,

    /// How long to wait for every live node to serve the new version.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub wait: Duration,

    /// How many of the app's newest versions its record keeps (and those a stage runs); the
    /// bundles only older versions used are deleted from the cluster (and, by a later
    /// deploy, those no record names once an hour old).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), default_value = "50")]
    pub keep_versions: u64,

    /// The NATS cluster.
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// `ledge status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,

    /// The NATS cluster.
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// `ledge build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The app: a manifest or a directory holding `spin.toml`.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    pub from: PathBuf,

    /// Build only these components (repeatable).
    #[arg(short = 'c', long = "component-id")]
    pub components: Vec<String>,
}

/// Reads `--variable` arguments: `KEY=VALUE`, or `@file.json` / `@file.toml` holding a flat
/// table of strings.
pub fn parse_variables(
    arguments: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut values = std::collections::BTreeMap::new();
    for argument in arguments {
        match argument.strip_prefix('@') {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("--variable @{file}: cannot read it: {e}"))?;
                let table: std::collections::BTreeMap<String, String> = if file.ends_with(".json") {
                    serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("--variable @{file}: {e}"))?
                } else if file.ends_with(".toml") {
                    toml::from_str(&text).map_err(|e| anyhow::anyhow!("--variable @{file}: {e}"))?
                } else {
                    anyhow::bail!("--variable @{file}: the file must end in .json or .toml");
                };
                values.extend(table);
            }
            None => {
                let (key, value) =
                    parse_key_value(argument).map_err(|e| anyhow::anyhow!("--variable: {e}"))?;
                values.insert(key, value);
            }
        }
    }
    Ok(values)
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{text}` has an empty key"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Checks an address or CIDR network (`10.0.0.0/8`, `2001:db8::1`).
fn parse_network(text: &str) -> Result<String, String> {
    crate::gateway::parse_network(text)
        .map(|_| text.to_string())
        .ok_or_else(|| format!("`{text}` is not an address or CIDR network, e.g. 10.0.0.0/8"))
}

/// A size as [`parse_size`] reads it, or `off` for no size at all (`u64::MAX`).
fn parse_size_or_off(text: &str) -> Result<u64, String> {
    match text {
        "off" => Ok(u64::MAX),
        _ => parse_size(text),
    }
}

/// Parses a byte size: a number with an optional unit (`k`, `KB`, `KiB`, `M`, `MB`, `MiB`, `G`,
/// `GB`, `GiB`; decimal units are powers of 1000, binary ones of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (try `128MiB`)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gi" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` (try `MiB` or `GB`)")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("10 ki"), Ok(10 << 10));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(parse_key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_key_value("novalue").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// How guest code is named for a native profiler (`--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestProfiler {
    /// `/tmp/perf-<pid>.map`, which `perf report` reads by itself.
    Perfmap,
    /// A jitdump file, for `perf inject --jit`.
    Jitdump,
}
