#!/usr/bin/env python3
"""IMAP sync benchmarks for issue #3, against a private Redis, Dovecot and Postfix.

Measures, each as the median of several runs where it makes sense:
  - a 10,000-message INBOX: time from POST /v1/account to `connected` (the whole INBOX is in
    the index by then), and the latency of GET /messages pages of 20;
  - N idle accounts (default 1,000): time until all are connected (IDLE), side by side with a
    bare IMAP client that LOGINs, LISTs, SELECTs and IDLEs as many fresh users on the same
    Dovecot (medians of BENCH_MANY_RUNS runs, alternating, each phase on a settled Dovecot;
    accounts posted over BENCH_POST_CLIENTS kept-alive connections, default 8), then the time
    until every folder is indexed, server memory per account, CPU used while idle, Redis bytes
    per account, and for the connecting phase the CPU of our server, Redis and Dovecot, the
    Redis commands and the server's read/write calls per account; BENCH_STORE=embedded runs
    the server on the embedded store instead of Redis;
  - SMTP hand-off to the local Postfix until the recipient's messageNew is in the event log;
  - `cost`: what each command sequence costs Dovecot for fresh users (wall time and Dovecot's
    CPU for BENCH_COST_USERS users at once): the bare client's LIST + SELECT, the same with
    CAPABILITY/ID/ENABLE, and with LIST-STATUS, as this server sends it.
Run through scripts/bench-imap.sh, which starts the services and sets the environment.
"""
import asyncio, atexit, concurrent.futures, http.client, json, os, statistics, subprocess, sys, time, urllib.request, imaplib, socket, smtplib

BIN = os.environ["EE_BIN"]
REDIS = os.environ["EE_REDIS_URL"]
REDIS_PORT = os.environ["EE_REDIS_PORT"]
IMAP_PORT = int(os.environ["IMAP_PORT"])
SMTP_PORT = int(os.environ["SMTP_PORT"])
MAILDIR_ROOT = os.environ["MAILDIR_ROOT"]  # <dir>/home/example.com
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "1000"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MANY_RUNS = int(os.environ.get("BENCH_MANY_RUNS", "3"))
POST_CLIENTS = int(os.environ.get("BENCH_POST_CLIENTS", "8"))
# `many` on the embedded store (the default) instead of Redis: BENCH_STORE=embedded.
EMBEDDED = os.environ.get("BENCH_STORE") == "embedded"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def redis(*args):
    return subprocess.run(["redis-cli", "-p", REDIS_PORT, "-n", "8", *map(str, args)],
                          capture_output=True, text=True, check=True).stdout.strip()


# Every server started, so that none outlives the benchmark when it fails half-way (a leaked
# server keeps reconnecting its accounts to whatever Dovecot later listens on the same port).
STARTED = []


@atexit.register
def stop_started():
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()


class Server:
    def __init__(self, prefix):
        self.port = free_port()
        if EMBEDDED:
            # The default store: a fresh data directory per prefix (kept across a restart).
            env = dict(os.environ, EENGINE_DB_PATH=f"/tmp/{prefix}-db")
            env.pop("EENGINE_REDIS", None)
        else:
            env = dict(os.environ, EENGINE_REDIS=REDIS, EENGINE_REDIS_PREFIX=prefix)
        self.token = subprocess.run([BIN, "tokens", "issue"], env=env, capture_output=True,
                                    text=True, check=True).stdout
        self.log = open(f"/tmp/{prefix}.log", "w")
        self.proc = subprocess.Popen([BIN, f"--api.port={self.port}", "--log.level=" + os.environ.get("BENCH_LOG_LEVEL", "info")], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        STARTED.append(self.proc)
        while True:
            try:
                self.call("GET", "/health"); break
            except OSError:
                time.sleep(0.01)

    def call(self, method, path, body=None):
        """One API call on a kept-alive connection, as client libraries make them."""
        if getattr(self, "conn", None) is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            self.conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                              headers={"Authorization": f"Bearer {self.token}",
                                       "Content-Type": "application/json"})
            r = self.conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close(); self.conn = None
            raise
        if r.status >= 400:
            raise OSError(f"{method} {path}: {r.status} {data[:200]!r}")
        return json.loads(data or b"null")

    @staticmethod
    def client_of(srv):
        """Another connection to the same server (for posting from several threads)."""
        other = object.__new__(Server)
        other.port, other.token, other.conn = srv.port, srv.token, None
        return other

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def syscalls(self):
        """Read- and write-family system calls so far, as /proc/<pid>/io counts them: read,
        pread, write, writev, pwrite; socket recv/send calls (tokio's TCP reads and writes) are
        not counted."""
        with open(f"/proc/{self.proc.pid}/io") as f:
            io = dict(l.split(": ") for l in f.read().splitlines())
        return int(io["syscr"]), int(io["syscw"])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            print("  server did not stop within 10 s of SIGTERM; killed")
            self.proc.kill(); self.proc.wait()


def account(user, name):
    return {"account": name, "name": name, "email": user,
            "imap": {"host": "127.0.0.1", "port": IMAP_PORT, "secure": False,
                     "auth": {"user": user, "pass": "pass"}}}


def fill_maildir(user, count):
    """Writes `count` messages straight into the user's Maildir (owned by vmail)."""
    local = user.split("@")[0]
    cur = os.path.join(MAILDIR_ROOT, local, "Maildir", "cur")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(MAILDIR_ROOT, local, "Maildir", sub), exist_ok=True)
    now = int(time.time())
    for i in range(count):
        body = (f"From: Sender {i % 97} <sender{i % 97}@example.org>\r\nTo: {user}\r\n"
                f"Subject: Message number {i}\r\nMessage-ID: <{i}.{local}@example.org>\r\n"
                f"Date: Tue, 01 Oct 2024 10:00:00 +0000\r\n\r\nBody of message {i}\r\n")
        with open(os.path.join(cur, f"{now - count + i}.M{i}P1.bench:2,S"), "w") as f:
            f.write(body)
    subprocess.run(["chown", "-R", "vmail:vmail", os.path.join(MAILDIR_ROOT, local)], check=True)
    # makedirs may have created the domain directory as root; Dovecot creates homes in it.
    subprocess.run(["chown", "vmail:vmail", MAILDIR_ROOT], check=True)
    # Let Dovecot build its own index once, so the figure is ours, not Dovecot's first scan.
    m = imaplib.IMAP4("127.0.0.1", IMAP_PORT); m.login(user, "pass"); m.select("INBOX")
    m.fetch("1:*", "(UID FLAGS)"); m.logout()


def wait(pred, timeout=120, step=0.005):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(step)
    raise TimeoutError


def big_inbox():
    results = []
    for run in range(RUNS):
        prefix = f"bench-big-{run}-{os.getpid()}"
        user = f"big{run}x{os.getpid()}@example.com"
        fill_maildir(user, MESSAGES)
        srv = Server(prefix)
        start = time.monotonic()
        srv.call("POST", "/v1/account", account(user, "big"))
        connected = wait(lambda: srv.call("GET", "/v1/account/big")["state"] == "connected")
        listed = srv.call("GET", "/v1/account/big/messages?path=INBOX&pageSize=20")
        assert listed["total"] == MESSAGES, listed["total"]
        indexed = int(redis("ZCARD", f"{prefix}:iam:big:l:" + path_hash("INBOX")))
        assert indexed == MESSAGES, indexed
        pages = []
        for i in range(60):
            t = time.monotonic()
            srv.call("GET", f"/v1/account/big/messages?path=INBOX&pageSize=20&page={i % 50}")
            pages.append((time.monotonic() - t) * 1000)
        index_bytes = int(redis("MEMORY", "USAGE", f"{prefix}:iam:big:l:" + path_hash("INBOX")))
        results.append((connected, statistics.median(pages[10:]), index_bytes / MESSAGES))
        srv.stop()
    c = statistics.median(r[0] for r in results)
    p = statistics.median(r[1] for r in results)
    b = statistics.median(r[2] for r in results)
    print(f"10k INBOX: POST /v1/account -> connected with all {MESSAGES} messages indexed: {c*1000:.0f} ms (median of {RUNS})")
    print(f"10k INBOX: GET /messages page of 20: {p:.2f} ms (median of 50 requests, per run median of {RUNS})")
    print(f"Redis bytes per indexed message (MEMORY USAGE of the index / messages): {b:.1f}")


def path_hash(path):
    import hashlib
    n = int(hashlib.sha1(path.encode()).hexdigest(), 16)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"; out = ""
    while n:
        n, r = divmod(n, 36); out = digits[r] + out
    return out or "0"


async def bare_session(user):
    """LOGIN, LIST, SELECT INBOX and IDLE, as a plain client does; returns the open stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", IMAP_PORT)
    await reader.readline()

    async def command(tag, line):
        writer.write(f"{tag} {line}\r\n".encode())
        await writer.drain()
        while True:
            answer = await reader.readline()
            if not answer:
                raise ConnectionError(f"{user}: closed during {line}")
            if answer.startswith(tag.encode() + b" "):
                if not answer.startswith(tag.encode() + b" OK"):
                    raise ConnectionError(f"{user}: {answer!r}")
                return

    await command("a1", f'LOGIN "{user}" "pass"')
    await command("a2", 'LIST "" "*"')
    await command("a3", "SELECT INBOX")
    writer.write(b"a4 IDLE\r\n")
    await writer.drain()
    while not (await reader.readline()).startswith(b"+"):
        pass
    return writer


async def bare_clients(users):
    dov0 = dovecot_cpu()
    start = time.monotonic()
    writers = await asyncio.gather(*(bare_session(u) for u in users))
    elapsed = time.monotonic() - start
    print(f"  bare: live Dovecot processes CPU {dovecot_cpu() - dov0:.2f} s while connecting")
    for w in writers:
        w.close()
    return elapsed


def dovecot_cpu():
    """CPU seconds of the live Dovecot processes (imap, imap-login, auth, ...)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:
            continue
        comm = head.split("(", 1)[1]
        if comm in ("imap", "imap-login", "auth", "dovecot", "anvil", "log", "config", "stats", "lmtp"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def redis_cpu():
    """CPU seconds of the Redis server (0 on the embedded store)."""
    if EMBEDDED:
        return 0.0
    info = dict(l.split(":", 1) for l in redis("INFO", "cpu").splitlines() if ":" in l)
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def redis_commands():
    """Commands the Redis server has run, by name (empty on the embedded store)."""
    if EMBEDDED:
        return {}
    out = {}
    for line in redis("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            out[name] = int(rest.split(",")[0].split("=")[1])
    return out


def imap_processes():
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    count += f.read().strip() == "imap"
            except OSError:
                pass
    return count


def settle(base):
    """Waits until the sessions of the phase before have left Dovecot (its imap processes
    gone), so that neither side's phase pays for the other's teardown."""
    try:
        wait(lambda: imap_processes() <= base + 5, timeout=60, step=0.2)
    except TimeoutError:
        print(f"  Dovecot still has {imap_processes()} imap processes after 60 s")
    time.sleep(1)


def ours(prefix, names, users):
    """Seconds from the first POST until every account is connected (IDLE), and the server."""
    srv = Server(prefix)
    cpu0, dov0, red0, cmds0 = srv.cpu_seconds(), dovecot_cpu(), redis_cpu(), redis_commands()
    sys0 = srv.syscalls()
    start = time.monotonic()
    # Posted over POST_CLIENTS kept-alive connections at once, as a provisioning script with a
    # small worker pool would (the bare client opens all its connections at once).
    def post_some(part):
        client = Server.client_of(srv)
        for name, user in part:
            client.call("POST", "/v1/account", account(user, name))
    pairs = list(zip(names, users))
    with concurrent.futures.ThreadPoolExecutor(POST_CLIENTS) as pool:
        list(pool.map(post_some, [pairs[i::POST_CLIENTS] for i in range(POST_CLIENTS)]))
    posted = time.monotonic() - start
    total = wait(lambda: srv.call("GET", "/v1/stats")["connections"]["connected"] == len(names),
                 timeout=300, step=0.05) + posted
    print(f"  server CPU {srv.cpu_seconds() - cpu0:.2f} s, Redis CPU {redis_cpu() - red0:.2f} s, "
          f"live Dovecot processes CPU {dovecot_cpu() - dov0:.2f} s while connecting")
    sys1 = srv.syscalls()
    print(f"  server read/write calls per account (/proc/<pid>/io; socket recv/send not counted): "
          f"{(sys1[0] - sys0[0]) / len(names):.1f} reads, {(sys1[1] - sys0[1]) / len(names):.1f} writes")
    if not EMBEDDED:
        # Counted until now, so the later commands of the stats polling are included (a few).
        cmds = {k: v - cmds0.get(k, 0) for k, v in redis_commands().items()}
        cmds = {k: v for k, v in cmds.items() if v}
        top = sorted(cmds.items(), key=lambda kv: -kv[1])
        print(f"  Redis commands per account: {sum(cmds.values()) / len(names):.1f} ("
              + ", ".join(f"{k} {v / len(names):.1f}" for k, v in top[:12]) + ")")
    return total, posted, srv


def many_accounts():
    bare_times, our_times = [], []
    base = imap_processes()
    for run in range(MANY_RUNS):
        tag = f"{run}x{os.getpid()}"
        settle(base)
        bare_times.append(asyncio.run(bare_clients([f"bare{i}r{tag}@example.com" for i in range(ACCOUNTS)])))
        settle(base)
        prefix = f"bench-many-{tag}"
        names = [f"a{i}" for i in range(ACCOUNTS)]
        users = [f"idle{i}r{tag}@example.com" for i in range(ACCOUNTS)]
        total, posted, srv = ours(prefix, names, users)
        our_times.append(total)
        print(f"  run {run + 1}: bare client {bare_times[-1]:.2f} s, emailengine {total:.2f} s ({posted:.2f} s posting)")
        if run + 1 < MANY_RUNS:
            srv.stop()
    bare = statistics.median(bare_times)
    mine = statistics.median(our_times)
    print(f"{ACCOUNTS} fresh users: bare IMAP client LOGIN+LIST+SELECT+IDLE {bare:.2f} s (median of {MANY_RUNS})")
    print(f"{ACCOUNTS} idle accounts: all connected (IDLE) {mine:.2f} s after the first POST (median of {MANY_RUNS})")
    print(f"{ACCOUNTS} idle accounts: ratio to the bare client {mine / bare:.2f}x")
    # The other folders of each fresh account are indexed after it reports `connected`; wait
    # for all of them (five per fresh Dovecot user) before measuring the idle server.
    folders = 5 * ACCOUNTS
    if EMBEDDED:
        def indexed():
            db = f"/tmp/{prefix}-db/emailengine.db"
            out = subprocess.run(["sqlite3", "-readonly", db, "SELECT count(DISTINCT fid) FROM folder_status"],
                                 capture_output=True, text=True).stdout.strip()
            return int(out or 0)
    else:
        def indexed():
            return len(redis("--scan", "--pattern", f"{prefix}:iam:*:h:*").split())
    try:
        after = wait(lambda: indexed() >= folders, timeout=300, step=0.2)
        print(f"{ACCOUNTS} idle accounts: all {folders} folders indexed {after:.2f} s after the last run's accounts were all connected")
    except (TimeoutError, ValueError, OSError) as e:
        print(f"  could not tell when all folders were indexed: {e!r}")
    base_rss = 0
    rss = srv.rss_kib()
    cpu0 = srv.cpu_seconds(); time.sleep(10); cpu1 = srv.cpu_seconds()
    sizes = {}
    if not EMBEDDED:
        keys = [f"{prefix}:{k}:a17" for k in ("iad", "ial", "iah")]
        keys += redis("--scan", "--pattern", f"{prefix}:iam:a17:*").split()
        sizes = {k: int(redis("MEMORY", "USAGE", k) or 0) for k in keys}
        print("  " + ", ".join(f"{k.split(':', 1)[1]}={v}" for k, v in sizes.items()))
    print(f"{ACCOUNTS} idle accounts: server RSS {rss/1024:.1f} MiB ({(rss - base_rss)/ACCOUNTS:.1f} KiB per account)")
    print(f"{ACCOUNTS} idle accounts: CPU while idle {cpu1 - cpu0:.2f} s over 10 s")
    print(f"{ACCOUNTS} idle accounts: Dovecot imap processes (one per connection) {imap_processes() - base}")
    print(f"Redis bytes for one idle account (its iad/ial/iah/iam keys): {sum(sizes.values())}")
    srv.stop()
    settle(base)
    restarted = Server(prefix)
    again = wait(lambda: restarted.call("GET", "/v1/stats")["connections"]["connected"] == ACCOUNTS, timeout=300, step=0.05)
    print(f"{ACCOUNTS} idle accounts: after a restart, all connected again {again:.2f} s after the API answered")
    restarted.stop()


def latency():
    prefix = f"bench-lat-{os.getpid()}"
    user = f"lat{os.getpid()}@example.com"
    srv = Server(prefix)
    srv.call("POST", "/v1/account", account(user, "lat"))
    wait(lambda: srv.call("GET", "/v1/account/lat")["state"] == "connected")
    samples = []
    for i in range(30):
        before = int(redis("XLEN", f"{prefix}:events"))
        t = time.monotonic()
        with smtplib.SMTP("127.0.0.1", SMTP_PORT) as s:
            s.sendmail("bob@example.com", [user], f"Subject: latency {i}\r\nTo: {user}\r\n\r\nhi\r\n")
        wait(lambda: int(redis("XLEN", f"{prefix}:events")) > before, timeout=30, step=0.002)
        samples.append((time.monotonic() - t) * 1000)
        time.sleep(0.2)
    samples.sort()
    print(f"SMTP hand-off -> messageNew in the event log: p50 {statistics.median(samples):.0f} ms, "
          f"p90 {samples[int(len(samples)*0.9)-1]:.0f} ms, max {samples[-1]:.0f} ms ({len(samples)} messages)")
    srv.stop()


async def scripted_session(user, commands):
    """LOGIN, the given commands, then IDLE; returns the open stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", IMAP_PORT)
    await reader.readline()
    for n, line in enumerate([f'LOGIN "{user}" "pass"', *commands]):
        tag = f"c{n}".encode()
        writer.write(tag + b" " + line.encode() + b"\r\n")
        await writer.drain()
        while True:
            answer = await reader.readline()
            if not answer:
                raise ConnectionError(f"{user}: closed during {line}")
            if answer.startswith(tag + b" "):
                break
    writer.write(b"i IDLE\r\n")
    await writer.drain()
    while not (await reader.readline()).startswith(b"+"):
        pass
    return writer


COST_SEQUENCES = {
    "bare: LIST, SELECT": ['LIST "" "*"', "SELECT INBOX"],
    "+ CAPABILITY, ID, ENABLE": ["CAPABILITY", 'ID ("name" "bench")', "ENABLE CONDSTORE", 'LIST "" "*"', "SELECT INBOX"],
    "LIST-STATUS, SELECT": ['LIST "" "*" RETURN (SUBSCRIBED STATUS (MESSAGES UIDNEXT UIDVALIDITY))', "SELECT INBOX"],
    "every folder first (reconnects)": ["CAPABILITY", 'ID ("name" "bench")', "ENABLE CONDSTORE",
        'LIST "" "*" RETURN (SUBSCRIBED STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ))', "SELECT INBOX (CONDSTORE)"],
    "a new account's first connection": ["CAPABILITY", 'ID ("name" "bench")', "ENABLE CONDSTORE",
        'LIST "" "*" RETURN (SUBSCRIBED)', "SELECT INBOX (CONDSTORE)"],
    "the same without CONDSTORE": ["CAPABILITY", 'ID ("name" "bench")', 'LIST "" "*" RETURN (SUBSCRIBED)', "SELECT INBOX"],
}


def dovecot_cost():
    users = int(os.environ.get("BENCH_COST_USERS", "300"))
    for name, commands in COST_SEQUENCES.items():
        tag = f"cost{abs(hash(name)) % 10000}x{os.getpid()}"
        async def run():
            cpu0, start = dovecot_cpu(), time.monotonic()
            writers = await asyncio.gather(*(scripted_session(f"u{i}{tag}@example.com", commands) for i in range(users)))
            elapsed, cpu = time.monotonic() - start, dovecot_cpu() - cpu0
            for w in writers:
                w.close()
            return elapsed, cpu
        elapsed, cpu = asyncio.run(run())
        print(f"{users} fresh users, {name:<28} {elapsed:.2f} s, Dovecot CPU {cpu:.2f} s")
        time.sleep(1)


if __name__ == "__main__":
    which = sys.argv[1:] or ["big", "many", "latency"]
    if "cost" in which: dovecot_cost()
    if "big" in which: big_inbox()
    if "latency" in which: latency()
    if "many" in which: many_accounts()
