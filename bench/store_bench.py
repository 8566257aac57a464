#!/usr/bin/env python3
"""Both stores side by side (issue #7): every figure is measured on the embedded store and on
Redis in the same run, alternating, and reported as the median of RUNS runs.

  - GET /v1/settings and GET /v1/stats, wrk -t2 -c50
  - wall time of `emailengine tokens issue`, alone and beside the running server
  - resident memory of an idle server
  - a 10,000-message INBOX: POST /v1/account until `connected` (every message indexed)
  - webhook fan-out: N events written to the event log, until a local receiver has them all
  - POST /v1/account/{account}/submit accepted per second (wrk -t2 -c50; scheduled for later)

Run through scripts/bench-store.sh, which starts Redis (without persistence, as the other
benchmarks), Dovecot and Postfix on loopback ports and sets the environment.
"""
import asyncio, json, os, shutil, socket, sqlite3, statistics, subprocess, sys, tempfile, threading, time, urllib.request

BIN = os.environ["EE_BIN"]
REDIS = os.environ["EE_REDIS_URL"]
REDIS_PORT = os.environ["EE_REDIS_PORT"]
IMAP_PORT = int(os.environ["IMAP_PORT"])
SMTP_PORT = int(os.environ["SMTP_PORT"])
MAILDIR_ROOT = os.environ["MAILDIR_ROOT"]
WORK = os.environ["BENCH_DIR"]
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SECS = int(os.environ.get("BENCH_SECS", "10"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
STORES = ["embedded", "redis"]


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


_n = 0
def unique(name):
    global _n
    _n += 1
    return f"{name}-{os.getpid()}-{_n}"


class Env:
    """A fresh store of one kind: a data directory, or a Redis key prefix."""
    def __init__(self, kind, name):
        self.kind = kind
        self.prefix = unique(name)
        self.dir = os.path.join(WORK, self.prefix)
        self.env = {"PATH": os.environ["PATH"], "HOME": WORK}
        if kind == "redis":
            self.env.update(EENGINE_REDIS=REDIS, EENGINE_REDIS_PREFIX=self.prefix)
        else:
            self.env.update(EENGINE_DB_PATH=self.dir)

    def cli(self, *args):
        return subprocess.run([BIN, *args], env=self.env, capture_output=True, text=True, check=True).stdout


class Server:
    def __init__(self, env, *extra):
        self.env = env
        self.port = free_port()
        self.token = env.cli("tokens", "issue")
        self.log = open(os.path.join(WORK, env.prefix + ".log"), "w")
        self.proc = subprocess.Popen([BIN, f"--api.port={self.port}", "--log.level=warn", *extra], env=env.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait(self.healthy, timeout=30)

    def healthy(self):
        try:
            self.call("GET", "/health"); return True
        except OSError:
            return False

    def call(self, method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read() or b"null")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

    def stop(self):
        self.proc.terminate(); self.proc.wait(10)


def wait(pred, timeout=300, step=0.005):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(step)
    raise TimeoutError


def wrk(url, token, seconds, script=None):
    cmd = ["wrk", "-t2", "-c50", f"-d{seconds}s", "-H", f"Authorization: Bearer {token}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError("non-2xx answers:\n" + out)
    return float(next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")))


def issue_ms(env, n=9):
    times = []
    for _ in range(n):
        t = time.monotonic(); env.cli("tokens", "issue", "-d", "bench"); times.append((time.monotonic() - t) * 1000)
    return statistics.median(times)


def core(kind):
    """Request rates, idle memory and `tokens issue` (before the server starts, and in another
    terminal while it runs: the seed workflow), on one server."""
    env = Env(kind, "core")
    env.cli("tokens", "issue")
    alone = issue_ms(env)
    srv = Server(env)
    time.sleep(2)
    rss = srv.rss_kib()
    beside = issue_ms(env)
    base = f"http://127.0.0.1:{srv.port}"
    settings = wrk(base + "/v1/settings?webhooks=true&webhooksEnabled=true", srv.token, SECS)
    stats = wrk(base + "/v1/stats", srv.token, SECS)
    srv.stop()
    return {"settings": settings, "stats": stats, "rss": rss / 1024, "issue": alone, "issue_running": beside}


def fill_maildir(user, count):
    """Writes `count` messages straight into Dovecot's Maildir for `user`."""
    local = user.split("@")[0]
    cur = os.path.join(MAILDIR_ROOT, local, "Maildir", "cur")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(MAILDIR_ROOT, local, "Maildir", d), exist_ok=True)
    now = int(time.time())
    for i in range(count):
        with open(os.path.join(cur, f"{now}.{i}.bench:2,S"), "w") as f:
            f.write(f"From: a{i}@example.com\r\nTo: {user}\r\nSubject: message {i}\r\n"
                    f"Message-ID: <{i}.{local}@bench>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody {i}\r\n")
    subprocess.run(["chown", "-R", "vmail:vmail", os.path.join(MAILDIR_ROOT, local)], check=True)
    subprocess.run(["chown", "vmail:vmail", MAILDIR_ROOT], check=True)


def big_inbox_user():
    user = f"big{os.getpid()}@example.com"
    fill_maildir(user, MESSAGES)
    # A plain client opens the folder once, so Dovecot's own first indexing is not measured.
    import imaplib
    c = imaplib.IMAP4("127.0.0.1", IMAP_PORT); c.login(user, "pass"); c.select("INBOX"); c.logout()
    return user


def big_inbox(kind, user):
    srv = Server(Env(kind, "big"))
    start = time.monotonic()
    srv.call("POST", "/v1/account", {"account": "big", "name": "big", "email": user,
        "imap": {"host": "127.0.0.1", "port": IMAP_PORT, "secure": False, "auth": {"user": user, "pass": "pass"}}})
    wait(lambda: srv.call("GET", "/v1/account/big")["state"] == "connected", timeout=300, step=0.002)
    took = (time.monotonic() - start) * 1000
    listed = srv.call("GET", "/v1/account/big/messages?path=INBOX&pageSize=1")["total"]
    assert listed == MESSAGES, listed
    srv.stop()
    return took


class Receiver:
    """Counts webhook POSTs (an asyncio HTTP/1.1 keep-alive responder)."""
    def __init__(self):
        self.port = free_port(); self.count = 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()
        time.sleep(0.2)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self.loop.run_forever()

    async def _client(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.count += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def fanout(kind):
    """Events written straight into the event log (100 accounts), until all were delivered."""
    rx = Receiver()
    env = Env(kind, "fan")
    srv = Server(env)
    srv.call("POST", "/v1/settings", {"webhooks": f"http://127.0.0.1:{rx.port}/hook", "webhooksEnabled": True})
    time.sleep(1.5)
    base = rx.count
    payload = json.dumps({"serviceUrl": None, "account": "x", "event": "messageNew", "data": {"id": "AAAAAQAAAAE"}})
    start = time.monotonic()
    if kind == "redis":
        cmds = "".join(f'XADD {env.prefix}:events * account a{i % 100} event messageNew payload {json.dumps(payload)}\n' for i in range(EVENTS))
        subprocess.run(["redis-cli", "-p", REDIS_PORT, "-n", "8"], input=cmds, text=True, capture_output=True, check=True)
    else:
        db = sqlite3.connect(os.path.join(env.dir, "emailengine.db"), timeout=30)
        now = int(time.time() * 1000)
        db.executemany("INSERT INTO events (id, account, event, payload, queued_at) VALUES (?, ?, 'messageNew', ?, ?)",
                       ((f"bench-{i}", f"a{i % 100}", payload, now) for i in range(EVENTS)))
        db.commit(); db.close()
    wait(lambda: rx.count - base >= EVENTS, step=0.01)
    took = time.monotonic() - start
    srv.stop()
    return EVENTS / took


def submit(kind):
    srv = Server(Env(kind, "submit"))
    user = f"sender{os.getpid()}@example.com"
    srv.call("POST", "/v1/account", {"account": "s", "name": "s", "email": user,
        "smtp": {"host": "127.0.0.1", "port": SMTP_PORT, "secure": False}})
    # Scheduled an hour ahead: the figure is the API's and the store's (accepting and queueing),
    # not the delivery's.
    send_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    body = json.dumps({"to": [{"address": f"rcpt{os.getpid()}@example.com"}], "subject": "bench", "text": "hello",
                       "sendAt": send_at})
    script = os.path.join(WORK, f"submit-{os.getpid()}.lua")
    with open(script, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n')
    rps = wrk(f"http://127.0.0.1:{srv.port}/v1/account/s/submit", srv.token, 5, script)
    srv.stop()
    return rps


def med(values):
    return statistics.median(values)


if __name__ == "__main__":
    rows = {k: {s: [] for s in STORES} for k in ["settings", "stats", "issue", "issue_running", "rss", "big", "fanout", "submit"]}
    user = big_inbox_user()
    for run in range(RUNS):
        for kind in (STORES if run % 2 == 0 else STORES[::-1]):
            c = core(kind)
            for k in ("settings", "stats", "issue", "issue_running", "rss"):
                rows[k][kind].append(c[k])
            rows["big"][kind].append(big_inbox(kind, user))
            rows["fanout"][kind].append(fanout(kind))
            rows["submit"][kind].append(submit(kind))
            print(f"run {run + 1} {kind}: " + ", ".join(f"{k} {rows[k][kind][-1]:.1f}" for k in rows), file=sys.stderr)
    labels = {
        "settings": ("GET /v1/settings (req/s, wrk -t2 -c50)", True),
        "stats": ("GET /v1/stats (req/s, wrk -t2 -c50)", True),
        "issue": ("`tokens issue` wall time, no server running (ms)", False),
        "issue_running": ("`tokens issue` wall time, server running (ms)", False),
        "rss": ("idle RSS after start (MiB)", False),
        "big": (f"{MESSAGES}-message INBOX connected and indexed (ms)", False),
        "fanout": (f"webhook fan-out, {EVENTS} events (events/s)", True),
        "submit": ("submits accepted (req/s, wrk -t2 -c50 5 s)", True),
    }
    print(f"| figure | embedded | Redis | embedded vs Redis |")
    print(f"|---|---|---|---|")
    for k, (label, higher_better) in labels.items():
        e, r = med(rows[k]["embedded"]), med(rows[k]["redis"])
        ratio = e / r if r else float("nan")
        better = (ratio >= 1) if higher_better else (ratio <= 1)
        print(f"| {label} | {e:,.1f} | {r:,.1f} | {ratio:.2f}x ({'better' if better else 'worse'}) |")
