//! The HTTP server against slow clients: thousands of connections that stall in their header,
//! in their body, or idle after a response are closed by the configured timeouts while the API
//! keeps answering and an IMAP account stays connected and receives new mail; the connection
//! bound refuses what lies beyond it and frees its slots; the descriptor limit is raised and
//! split at start; SIGTERM still finishes the requests in flight; HTTP/2 keeps working.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const PAYLOAD_TIMEOUT: Duration = Duration::from_secs(3);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);
/// How late a close may come on a loaded two-core machine and still be the timeout's doing
/// (a server without the timeout keeps these sockets open for as long as the client wants).
/// How late a close may come after its timeout, counted from the connection's setup: a loaded
/// two-core machine delays timers and accepts.
const SLACK: Duration = Duration::from_millis(4000);
/// Attack sockets held at once, when the test process's descriptor limit allows.
const ATTACK_SOCKETS: usize = 3000;

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Raises this process's soft descriptor limit to the hard one; returns the soft limit.
fn raise_own_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
    }
    limit.rlim_cur
}

/// The hard `Max open files` of this process (the server inherits it).
fn hard_descriptor_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(4).unwrap().parse().unwrap()
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn account_payload(account: &str, user: &str) -> Value {
    let (imap, _) = mail_ports();
    json!({
        "account": account, "name": format!("User {account}"), "email": user,
        "imap": {"host": "127.0.0.1", "port": imap, "secure": false, "auth": {"user": user, "pass": "pass"}}
    })
}

async fn wait_state(server: &Server, token: &str, account: &str, want: &str) -> Value {
    wait_for(&format!("{account} to reach {want}"), 20, || async {
        let (status, body) = server
            .get(&format!("/v1/account/{account}"), Some(token))
            .await;
        (status == 200 && body["state"] == want).then_some(body)
    })
    .await
}

/// Reads one HTTP/1.1 response with a `content-length` body.
async fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + length {
                return data;
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-response: {data:?}");
        data.extend_from_slice(&buf[..n]);
    }
}

/// Whether the server closed the connection within `wait` (EOF or reset), and what it sent.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut reply = Vec::new();
    match tokio::time::timeout(wait, stream.read_to_end(&mut reply)).await {
        Ok(_) => Some(reply),
        Err(_) => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stall {
    /// Connects and sends nothing.
    Silent,
    /// Sends half a request header.
    HalfHeader,
    /// Sends a whole header (authenticated, so the handler reads the body) and part of the body.
    PartialBody,
    /// Gets a response, then keeps the connection open without another request.
    IdleKeepAlive,
}

impl Stall {
    fn timeout(self) -> Duration {
        match self {
            Stall::Silent | Stall::HalfHeader => HEADER_TIMEOUT,
            Stall::PartialBody => PAYLOAD_TIMEOUT,
            Stall::IdleKeepAlive => KEEPALIVE_TIMEOUT,
        }
    }
}

/// One attack socket's life, from before its connect (so that a late wake-up of this client
/// can only lengthen it) to the server's close.
struct Closed {
    stall: Stall,
    /// From before the connect (never shorter than the server's view).
    lived: Duration,
    /// From the finished connect (a retried SYN is not the server's delay).
    since_connected: Duration,
    reply: Vec<u8>,
}

#[derive(Default)]
struct Attack {
    running: AtomicBool,
    open: AtomicUsize,
    peak: AtomicUsize,
    connect_failures: AtomicUsize,
    closed: Mutex<Vec<Closed>>,
}

impl Attack {
    async fn stall_once(&self, port: u16, stall: Stall, token: &str) {
        let start = Instant::now();
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            self.connect_failures.fetch_add(1, Ordering::SeqCst);
            return;
        };
        let connected = Instant::now();
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(open, Ordering::SeqCst);
        match stall {
            Stall::Silent => {}
            Stall::HalfHeader => stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .await
                .unwrap(),
            Stall::PartialBody => stream
                .write_all(
                    format!(
                        "POST /v1/account HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
                         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"account\": \"x"
                    )
                    .as_bytes(),
                )
                .await
                .unwrap(),
            Stall::IdleKeepAlive => {
                stream
                    .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await
                    .unwrap();
                let response = read_response(&mut stream).await;
                assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
            }
        }
        let limit = stall.timeout() + SLACK * 4;
        let reply = closed_within(&mut stream, limit)
            .await
            .unwrap_or_else(|| b"<still open>".to_vec());
        let lived = start.elapsed();
        let since_connected = connected.elapsed();
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.closed.lock().unwrap().push(Closed {
            stall,
            lived,
            since_connected,
            reply,
        });
    }
}

/// Latencies of the calls made while the attack runs, and the calls that failed.
#[derive(Default)]
struct Probes {
    health: Vec<Duration>,
    api: Vec<Duration>,
    failures: Vec<String>,
    peak_server_descriptors: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut values: Vec<Duration>) -> String {
    values.sort();
    format!(
        "n={} min={:?} p50={:?} p95={:?} max={:?}",
        values.len(),
        values[0],
        percentile(&values, 0.5),
        percentile(&values, 0.95),
        values[values.len() - 1]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_while_the_api_and_imap_keep_working() {
    let own_limit = raise_own_descriptor_limit();
    // Room for the probes, the harness and the mail sender beside the attack sockets.
    let sockets = ATTACK_SOCKETS.min(own_limit.saturating_sub(500) as usize);
    assert!(sockets >= 1000, "descriptor limit {own_limit} is too low");
    let env = Env::new("http-slow")
        .var("EENGINE_HEADER_TIMEOUT", &ms(HEADER_TIMEOUT))
        .var("EENGINE_MAX_PAYLOAD_TIMEOUT", &ms(PAYLOAD_TIMEOUT))
        .var("EENGINE_KEEPALIVE_TIMEOUT", &ms(KEEPALIVE_TIMEOUT))
        .var("EENGINE_LOG_LEVEL", "info");
    let user = format!("{}@example.com", env.prefix);
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/account",
            Some(&token),
            Some(account_payload("ann", &user)),
        )
        .await;
    assert_eq!(status, 200);
    wait_state(&server, &token, "ann", "connected").await;
    let baseline = open_descriptors(server.pid());

    let attack = Arc::new(Attack::default());
    attack.running.store(true, Ordering::SeqCst);
    let mix = [
        (Stall::Silent, sockets / 10),
        (Stall::HalfHeader, sockets * 6 / 10),
        (Stall::PartialBody, sockets * 2 / 10),
        (Stall::IdleKeepAlive, sockets / 10),
    ];
    let mut slots = Vec::new();
    for (stall, count) in mix {
        for i in 0..count {
            let attack = attack.clone();
            let token = token.clone();
            slots.push(tokio::spawn(async move {
                while attack.running.load(Ordering::SeqCst) {
                    attack.stall_once(port, stall, &token).await;
                }
            }));
            // Ramp up in batches rather than one burst deeper than the listen queue.
            if i % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    let probes = Arc::new(Mutex::new(Probes::default()));
    let probing = Arc::new(AtomicBool::new(true));
    let monitor = {
        let (probes, probing) = (probes.clone(), probing.clone());
        let (base, token, pid) = (server.base.clone(), token.clone(), server.pid());
        tokio::spawn(async move {
            // A new connection per health check (the accept path under attack) and a pooled
            // one for the authenticated call.
            let fresh = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let pooled = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            while probing.load(Ordering::SeqCst) {
                let t = Instant::now();
                let health = fresh.get(format!("{base}/health")).send().await;
                let health_took = t.elapsed();
                let t = Instant::now();
                let api = pooled
                    .get(format!("{base}/v1/account/ann"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                let api = match api {
                    Ok(r) => Ok((r.status().as_u16(), r.json::<Value>().await)),
                    Err(e) => Err(e),
                };
                let api_took = t.elapsed();
                let fds = open_descriptors(pid);
                {
                    let mut p = probes.lock().unwrap();
                    match health {
                        Ok(r) if r.status() == 200 => p.health.push(health_took),
                        other => p.failures.push(format!("/health: {other:?}")),
                    }
                    match api {
                        Ok((200, Ok(body))) if body["state"] == "connected" => p.api.push(api_took),
                        other => p.failures.push(format!("/v1/account/ann: {other:?}")),
                    }
                    p.peak_server_descriptors = p.peak_server_descriptors.max(fds);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    wait_for("the attack sockets to be open", 30, || async {
        (attack.open.load(Ordering::SeqCst) >= sockets * 9 / 10).then_some(())
    })
    .await;
    let under_attack = Instant::now();

    // New mail arrives through the account's IMAP connection while the attack goes on.
    let sent_at = Instant::now();
    let to = user.clone();
    tokio::task::spawn_blocking(move || {
        send_mail(
            "bob@example.com",
            &to,
            &format!("From: bob@example.com\r\nTo: {to}\r\nSubject: under attack\r\nMessage-ID: <under-attack@example.com>\r\n\r\nStill here.\r\n"),
        )
    })
    .await
    .unwrap();
    let new = wait_for("messageNew during the attack", 30, || async {
        env.events_of("ann", "messageNew").await.into_iter().next()
    })
    .await;
    let mail_latency = sent_at.elapsed();
    assert_eq!(new.payload["data"]["subject"], "under attack");
    assert!(
        attack.open.load(Ordering::SeqCst) >= sockets / 2,
        "the mail arrived after the attack faded"
    );

    // Several rounds of every timeout under a sustained attack.
    let attack_span = PAYLOAD_TIMEOUT * 3;
    if let Some(rest) = attack_span.checked_sub(under_attack.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    attack.running.store(false, Ordering::SeqCst);
    for slot in slots {
        slot.await.unwrap();
    }
    probing.store(false, Ordering::SeqCst);
    monitor.await.unwrap();

    let released = wait_for("the server to release the attack sockets", 10, || async {
        let now = open_descriptors(server.pid());
        (now <= baseline + 5).then_some(now)
    })
    .await;
    let account = wait_state(&server, &token, "ann", "connected").await;
    assert_eq!(account["lastError"], Value::Null);

    let closed = std::mem::take(&mut *attack.closed.lock().unwrap());
    let mut by_stall: BTreeMap<Stall, Vec<&Closed>> = BTreeMap::new();
    for c in &closed {
        by_stall.entry(c.stall).or_default().push(c);
    }
    eprintln!(
        "attack: {} sockets held (peak {}), {} closed in {:?}; server descriptors {} before, peak {}, {} after",
        sockets,
        attack.peak.load(Ordering::SeqCst),
        closed.len(),
        under_attack.elapsed(),
        baseline,
        probes.lock().unwrap().peak_server_descriptors,
        released
    );
    for (stall, count) in mix {
        let lives = by_stall.remove(&stall).unwrap_or_default();
        assert!(
            lives.len() >= count,
            "{stall:?}: only {} of {count} closed",
            lives.len()
        );
        eprintln!(
            "{stall:?} (timeout {:?}): lived {}",
            stall.timeout(),
            summary(lives.iter().map(|c| c.lived).collect())
        );
        for c in lives {
            assert!(
                c.lived >= stall.timeout() && c.since_connected <= stall.timeout() + SLACK,
                "{stall:?} closed after {:?}; it sent {:?}",
                c.lived,
                String::from_utf8_lossy(&c.reply)
            );
            if stall == Stall::PartialBody {
                let reply = String::from_utf8_lossy(&c.reply);
                assert!(
                    reply.starts_with("HTTP/1.1 408 Request Timeout\r\n")
                        && reply.ends_with(r#"{"statusCode":408,"error":"Request Timeout","message":"Request body was not received in time"}"#),
                    "{reply}"
                );
            } else {
                assert_eq!(String::from_utf8_lossy(&c.reply), "", "{stall:?}");
            }
        }
    }
    assert_eq!(attack.connect_failures.load(Ordering::SeqCst), 0);
    assert!(attack.peak.load(Ordering::SeqCst) >= sockets * 9 / 10);

    let probes = std::mem::take(&mut *probes.lock().unwrap());
    assert_eq!(probes.failures, Vec::<String>::new());
    assert!(
        probes.peak_server_descriptors >= baseline + sockets * 8 / 10,
        "the server never held the attack sockets: peak {} descriptors",
        probes.peak_server_descriptors
    );
    assert!(probes.health.len() >= 20 && probes.api.len() >= 20);
    eprintln!("messageNew {mail_latency:?} after the SMTP hand-off, under attack");
    eprintln!(
        "GET /health on a new connection: {}",
        summary(probes.health.clone())
    );
    eprintln!(
        "GET /v1/account/ann (authenticated): {}",
        summary(probes.api.clone())
    );
    let slowest = probes.health.iter().chain(&probes.api).max().copied();
    assert!(
        slowest.is_some_and(|d| d < Duration::from_secs(2)),
        "an API call took {slowest:?} during the attack"
    );
}

#[tokio::test]
async fn the_connection_bound_refuses_beyond_it_and_frees_slots() {
    let env = Env::new("http-bound")
        .var("EENGINE_MAX_CONNECTIONS", "20")
        .var("EENGINE_HEADER_TIMEOUT", "30s")
        .var("EENGINE_KEEPALIVE_TIMEOUT", "200ms");
    let server = env.start(&[]).await;
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let connect = || async move { TcpStream::connect(("127.0.0.1", port)).await.unwrap() };
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    // The harness's own health checks leave a kept-alive connection; let it expire.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect().await);
    }
    settle().await;
    let started = Instant::now();
    let mut beyond = connect().await;
    assert_eq!(
        closed_within(&mut beyond, Duration::from_secs(2)).await,
        Some(Vec::new()),
        "connection 21 was not closed"
    );
    let refused_after = started.elapsed();
    assert!(
        refused_after < Duration::from_millis(500),
        "{refused_after:?}"
    );
    for stream in &mut held {
        assert_eq!(
            closed_within(stream, Duration::from_millis(20)).await,
            None,
            "a held connection was closed"
        );
    }
    assert!(server.http.get(server.url("/health")).send().await.is_err());

    // Five slots free up and go to the next five clients; the sixth is refused again.
    held.truncate(15);
    settle().await;
    let mut next = Vec::new();
    for _ in 0..5 {
        next.push(connect().await);
    }
    settle().await;
    let mut beyond = connect().await;
    assert_eq!(
        closed_within(&mut beyond, Duration::from_secs(2)).await,
        Some(Vec::new())
    );
    for stream in &mut next {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(stream).await;
        assert!(
            response.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{}",
            String::from_utf8_lossy(&response)
        );
    }

    drop(held);
    drop(next);
    settle().await;
    let (status, body) = server.get("/health", None).await;
    assert_eq!(status, 200, "{body}");
    let refusals: Vec<Value> = server
        .log_lines()
        .into_iter()
        .filter(|l| l["msg"] == "API connection limit reached, refusing connections")
        .collect();
    assert_eq!(refusals.len(), 1, "one line per interval: {refusals:?}");
    assert_eq!(refusals[0]["limit"], 20);
    assert_eq!(refusals[0]["refused"], 1);
    assert_eq!(refusals[0]["level"], 40);
}

#[tokio::test]
async fn start_up_raises_the_descriptor_limit_and_keeps_a_reserve() {
    let hard = hard_descriptor_limit();
    let start = |vars: &[(&str, &str)]| {
        let dir = std::env::temp_dir().join(unique_prefix("ee-http-fd"));
        // The shell lowers the soft limit, as a service manager might leave it.
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(r#"ulimit -S -n 1000 && exec "$0" "$@""#)
            .arg(BIN)
            .arg("--api.port=0")
            .env_clear()
            .env("EENGINE_DB_PATH", &dir)
            .env("EENGINE_LOG_LEVEL", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = Vec::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let done = line["msg"] == "API server listening";
            lines.push(line);
            if done {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        lines
    };
    let find = |lines: &[Value], msg: &str| lines.iter().find(|l| l["msg"] == msg).cloned();

    let lines = start(&[]);
    let figures = find(&lines, "API connection limit").expect("the figures are logged");
    assert_eq!(figures["fdLimit"], hard);
    assert_eq!(figures["fdLimitRaisedFrom"], 1000);
    assert_eq!(figures["fdReserve"], hard / 4);
    assert_eq!(figures["maxConnections"], hard - hard / 4);
    assert_eq!(
        (
            &figures["headerTimeout"],
            &figures["maxPayloadTimeout"],
            &figures["keepAliveTimeout"]
        ),
        (&json!(10_000), &json!(10_000), &json!(5_000))
    );

    let lines = start(&[
        ("EENGINE_MAX_CONNECTIONS", &hard.to_string()),
        ("EENGINE_FD_RESERVE", "1000"),
    ]);
    let figures = find(&lines, "API connection limit").unwrap();
    assert_eq!(figures["maxConnections"], hard - 1000);
    let lowered = find(
        &lines,
        "API connection limit lowered to keep the descriptor reserve",
    )
    .expect("a warning when the configured bound eats into the reserve");
    assert_eq!(lowered["requested"], hard);

    let lines = start(&[("EENGINE_FD_RESERVE", &hard.to_string())]);
    let fatal = lines.last().unwrap();
    assert_eq!(fatal["level"], 60);
    assert_eq!(fatal["msg"], "Invalid connection limits");
}

#[tokio::test]
async fn sigterm_finishes_the_requests_in_flight() {
    let env = Env::new("http-term");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let body = br#"{"account": 5}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/account HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream.write_all(&body[..5]).await.unwrap();
    // A half-sent header has no request to finish: it is closed at once, not at its timeout.
    let mut half = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    wait_for("the listener to close", 5, || async {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert_eq!(
        closed_within(&mut half, Duration::from_secs(1)).await,
        Some(Vec::new())
    );
    stream.write_all(&body[5..]).await.unwrap();
    let response = read_response(&mut stream).await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(
        response.contains(r#""message":"Invalid input""#),
        "{response}"
    );
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Finishing open API requests"), "{log}");
    assert!(log.contains("EmailEngine stopped"), "{log}");
}

#[tokio::test]
async fn http2_with_prior_knowledge_keeps_working() {
    let env = Env::new("http-h2");
    let token = env.issue(&[]);
    let server = env.start(&[]).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let health = h2.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    assert_eq!(health.status(), 200);
    let (status, body) = into_json(
        h2.get(server.url("/v1/accounts"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accounts"], json!([]));
    let (status, body) = into_json(h2.get(server.url("/v1/accounts")).send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"statusCode": 401, "error": "Unauthorized", "message": "Missing authentication"})
        )
    );
}
