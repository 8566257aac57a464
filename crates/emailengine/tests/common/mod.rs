//! Test harness: the real `emailengine` binary on a store of its own per test, and helpers to
//! call it over HTTP and the CLI. The store is the embedded one (a fresh data directory) unless
//! `EE_TEST_STORE=redis` says Redis (the one named by `EE_TEST_REDIS_URL`, or a private
//! `redis-server` started on a free loopback port; each test gets its own key prefix). Tests
//! that check EmailEngine's Redis layout ask for Redis with [`Env::redis`]; everything else
//! reads what the server stored through the store traits ([`Env::store`]), on either backend.

#![allow(dead_code)]

pub mod dns;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_emailengine");

/// EmailEngine's own test token (spec §3.1, §3.6).
pub const TEST_TOKEN: &str = "2aa97ad0456d6624a55d30780aa2ff61bfb7edc6fa00935b40814b271e718660";
pub const TEST_TOKEN_ID: &str = "ea3873f9234fb3b8b700043373138c730c56fd2f7fa27dbcdc61d4c9c2b2df8d";
pub const TEST_EXPORT: &str = "hKJpZNlAZWEzODczZjkyMzRmYjNiOGI3MDAwNDMzNzMxMzhjNzMwYzU2ZmQyZjdmYTI3ZGJjZGM2MWQ0YzljMmIyZGY4ZKdjcmVhdGVk1_-UiOcAZ2lLVqZzY29wZXORoSqrZGVzY3JpcHRpb26qdGVzdCB0b2tlbg";

struct RedisGuard {
    url: String,
    // Holding the pipe open keeps the private redis-server alive; when the test process exits,
    // the pipe closes and the watchdog shell stops it.
    _stdin: Option<ChildStdin>,
    _watchdog: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The Redis URL tests use (db 0; tests separate their data by key prefix).
pub fn redis_url() -> String {
    static REDIS: OnceLock<RedisGuard> = OnceLock::new();
    REDIS
        .get_or_init(|| {
            if let Ok(url) = std::env::var("EE_TEST_REDIS_URL") {
                return RedisGuard {
                    url,
                    _stdin: None,
                    _watchdog: None,
                };
            }
            let port = free_port();
            let script = format!(
                "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null 2>&1 & pid=$!; read _; kill $pid"
            );
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::piped())
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server), or set EE_TEST_REDIS_URL");
            let stdin = child.stdin.take();
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
            RedisGuard {
                url: format!("redis://127.0.0.1:{port}/0"),
                _stdin: stdin,
                _watchdog: Some(child),
            }
        })
        .url
        .clone()
}

/// A key prefix unique to this test process and call.
pub fn unique_prefix(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        name
    )
}

/// A direct Redis connection for checking what the server wrote.
pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// Which store the server under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis,
}

impl Backend {
    /// `EE_TEST_STORE=redis` runs the suites on Redis; the embedded store otherwise.
    pub fn from_env() -> Self {
        match std::env::var("EE_TEST_STORE").as_deref() {
            Ok("redis") => Backend::Redis,
            _ => Backend::Embedded,
        }
    }
}

/// One isolated environment: its own store (a data directory, or a Redis key prefix) plus
/// extra environment variables.
#[derive(Clone)]
pub struct Env {
    pub prefix: String,
    pub vars: Vec<(String, String)>,
    pub backend: Backend,
    /// The embedded store's data directory (unused on Redis).
    pub data_dir: std::path::PathBuf,
    /// A Redis other than the shared test Redis.
    pub redis: Option<String>,
}

impl Env {
    /// An environment on the backend the test run asks for.
    pub fn new(name: &str) -> Self {
        Self::on(name, Backend::from_env())
    }

    /// An environment on Redis, for checks of EmailEngine's key layout.
    pub fn redis(name: &str) -> Self {
        Self::on(name, Backend::Redis)
    }

    pub fn on(name: &str, backend: Backend) -> Self {
        let prefix = unique_prefix(name);
        Self {
            data_dir: std::env::temp_dir().join(format!("ee-{prefix}")),
            prefix,
            vars: Vec::new(),
            backend,
            redis: None,
        }
    }

    fn redis_url(&self) -> String {
        self.redis.clone().unwrap_or_else(redis_url)
    }

    /// The store configuration the server and the CLI of this environment use.
    pub fn store_config(&self) -> emailengine_store::StoreConfig {
        match self.backend {
            Backend::Redis => emailengine_store::StoreConfig::Redis {
                url: self.redis_url(),
                prefix: self.prefix.clone(),
            },
            Backend::Embedded => emailengine_store::StoreConfig::Embedded {
                dir: self.data_dir.clone(),
            },
        }
    }

    /// The environment's store, opened from the test process (beside a running server), to
    /// check what the server stored.
    pub async fn store(&self) -> std::sync::Arc<dyn emailengine_store::Store> {
        emailengine_store::open(&self.store_config(), emailengine_store::Role::Tool)
            .await
            .expect("open the test store")
    }

    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.push((k.into(), v.into()));
        self
    }

    /// A Redis key with this environment's prefix (Redis environments only).
    pub fn key(&self, name: &str) -> String {
        assert_eq!(
            self.backend,
            Backend::Redis,
            "Redis keys exist on Redis only"
        );
        format!("{}:{}", self.prefix, name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        match self.backend {
            Backend::Redis => {
                cmd.env("EENGINE_REDIS", self.redis_url())
                    .env("EENGINE_REDIS_PREFIX", &self.prefix);
            }
            Backend::Embedded => {
                cmd.env("EENGINE_DB_PATH", &self.data_dir);
            }
        }
        // Discovery stays off the network unless a test points it at its own servers.
        cmd.env("EENGINE_AUTOCONFIG_SOURCES", "none");
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI command to completion (killed after 20 s).
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let start = Instant::now();
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn emailengine");
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("emailengine {args:?} did not exit within 20 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let output = child.wait_with_output().expect("output");
        CliOutput::new(output, start.elapsed())
    }

    /// Starts the server and waits until `/health` answers.
    pub async fn start(&self, extra_args: &[&str]) -> Server {
        let port = free_port();
        let port_arg = format!("--api.port={port}");
        let mut args = vec![port_arg.as_str()];
        args.extend_from_slice(extra_args);
        let mut child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn emailengine server");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = server.http.get(server.url("/health")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server did not become healthy; log:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    /// Issues a token over the CLI and returns it.
    pub fn issue(&self, args: &[&str]) -> String {
        let mut all = vec!["tokens", "issue"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert_eq!(out.code, 0, "tokens issue failed: {}", out.stderr);
        out.stdout
    }
}

pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CliOutput {
    fn new(o: Output, elapsed: Duration) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            elapsed,
        }
    }
}

pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Parsed JSON log lines.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_json(req.send().await.expect("request")).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_json(req.send().await.expect("request")).await
    }

    /// The server's process id (to signal it, or to look at its descriptors in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns the exit code.
    pub fn stop(mut self) -> (i32, String) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_millis(50));
        (code, self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn into_json(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// The loopback IMAP and SMTP ports of the test mail system (scripts/test.sh starts it).
pub fn mail_ports() -> (u16, u16) {
    let port = |name: &str| -> u16 {
        std::env::var(name)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{name} is not set: run the tests with scripts/test.sh, which starts Dovecot and Postfix"))
    };
    (port("EE_TEST_IMAP_PORT"), port("EE_TEST_SMTP_PORT"))
}

/// Hands a message to the test Postfix over SMTP; returns the final server reply.
pub fn send_mail(from: &str, to: &str, raw: &str) -> String {
    use std::io::{Read, Write};
    let (_, smtp) = mail_ports();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", smtp)).expect("connect to SMTP");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let read_reply = |s: &mut std::net::TcpStream| -> String {
        let mut reply = String::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = s.read(&mut buf).expect("SMTP reply");
            assert!(n > 0, "SMTP connection closed");
            reply.push_str(&String::from_utf8_lossy(&buf[..n]));
            // A complete reply ends with a line "NNN text" (no dash after the code).
            if let Some(last) = reply.trim_end().lines().last()
                && last.len() >= 4
                && last.as_bytes()[3] == b' '
                && reply.ends_with("\r\n")
            {
                return reply;
            }
        }
    };
    let command = |s: &mut std::net::TcpStream, line: &str, expect: &str| -> String {
        s.write_all(line.as_bytes()).unwrap();
        let reply = read_reply(s);
        assert!(reply.starts_with(expect), "SMTP {line:?} -> {reply}");
        reply
    };
    let greeting = read_reply(&mut stream);
    assert!(greeting.starts_with("220"), "{greeting}");
    command(&mut stream, "EHLO test.local\r\n", "250");
    command(&mut stream, &format!("MAIL FROM:<{from}>\r\n"), "250");
    command(&mut stream, &format!("RCPT TO:<{to}>\r\n"), "250");
    command(&mut stream, "DATA\r\n", "354");
    let mut body = String::new();
    for line in raw.replace("\r\n", "\n").split('\n') {
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    let reply = command(&mut stream, &body, "250");
    let _ = stream.write_all(b"QUIT\r\n");
    reply
}

/// One event read back from the event stream.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub account: String,
    pub event: String,
    pub payload: serde_json::Value,
}

impl Env {
    /// Every event in this environment's event log, oldest first.
    pub async fn events(&self) -> Vec<StoredEvent> {
        let mut events = self
            .store()
            .await
            .recent_events(None, 1_000_000)
            .await
            .expect("read the event log");
        events.reverse();
        events
            .into_iter()
            .map(|e| StoredEvent {
                id: e.id,
                account: e.account,
                event: e.event,
                payload: serde_json::from_str(&e.payload).unwrap_or_default(),
            })
            .collect()
    }

    /// Events of one kind for one account.
    pub async fn events_of(&self, account: &str, event: &str) -> Vec<StoredEvent> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e.account == account && e.event == event)
            .collect()
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `secs` seconds.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::sync::atomic::AtomicBool;

/// A webhook receiver: records every POST to `/hook`; can be told to fail.
#[derive(Clone, Default)]
pub struct Receiver {
    pub hits: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Answer 500 to this many requests first.
    pub fail_first: Arc<AtomicUsize>,
    /// Answer 500 to everything while set.
    pub down: Arc<AtomicBool>,
}

impl Receiver {
    pub async fn start(&self) -> String {
        let this = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let this = this.clone();
                async move {
                    if this.down.load(Ordering::SeqCst) {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    if this.fail_first.load(Ordering::SeqCst) > 0 {
                        this.fail_first.fetch_sub(1, Ordering::SeqCst);
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    this.hits.lock().unwrap().push((headers, body));
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://user:p%40ss@127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    pub fn events(&self) -> Vec<(HeaderMap, Value)> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| (h.clone(), serde_json::from_slice(b).unwrap()))
            .collect()
    }
}

pub fn hmac_b64(secret: &str, parts: &[&[u8]], url_safe: bool) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    let bytes = mac.finalize().into_bytes();
    if url_safe {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    } else {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// Where the test Dovecot keeps `user@example.com`'s Maildir (`EE_TEST_MAILDIR`, set by
/// scripts/test.sh), for writing many messages straight into a mailbox.
pub fn maildir(user: &str) -> std::path::PathBuf {
    let root = std::env::var("EE_TEST_MAILDIR").unwrap_or_else(|_| {
        panic!("EE_TEST_MAILDIR is not set: run the tests with scripts/test.sh")
    });
    let local = user.split('@').next().unwrap_or(user);
    std::path::PathBuf::from(root).join(local).join("Maildir")
}

/// Writes `count` messages into a user's Maildir as Dovecot's delivery would (owned by vmail).
pub fn fill_maildir(user: &str, count: usize, tag: &str) {
    let dir = maildir(user);
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for i in 0..count {
        let body = format!(
            "From: bulk@example.com\r\nTo: {user}\r\nSubject: {tag} {i}\r\nMessage-ID: <{tag}.{i}@bulk>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nmessage {i}\r\n"
        );
        std::fs::write(dir.join("new").join(format!("{tag}.{i}.bulk")), body).unwrap();
    }
    let home = dir.parent().unwrap();
    let status = Command::new("chown")
        .args(["-R", "vmail:vmail"])
        .arg(home)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = Command::new("chown")
        .args(["vmail:vmail"])
        .arg(home.parent().unwrap())
        .status();
}

/// A Redis of one test's own, with an append-only file, that the test may stop and start again
/// on the same port (the shared test Redis must never be restarted).
pub struct PrivateRedis {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("redis-{}", unique_prefix(name)));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            port: free_port(),
            dir,
            child: None,
        };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port and data directory.
    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// Stops it (SIGTERM: the append-only file is complete).
    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    /// An environment on a private Redis (see [`PrivateRedis`]).
    pub fn on_private_redis(name: &str, redis: &PrivateRedis) -> Self {
        Self {
            redis: Some(redis.url()),
            ..Self::on(name, Backend::Redis)
        }
    }
}

/// Where browser tests keep their screenshots (`EE_ARTIFACTS`, else `target/screenshots`).
pub fn artifacts() -> std::path::PathBuf {
    let dir = std::env::var("EE_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
        });
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}
