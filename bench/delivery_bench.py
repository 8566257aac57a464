#!/usr/bin/env python3
"""Delivery benchmarks for issue #4, against a private Redis, Dovecot and Postfix and a local
webhook receiver (an asyncio HTTP/1.1 keep-alive responder in this script).

  - webhook fan-out: N events written to the event log, time until the receiver has them all;
  - SMTP hand-off to the local Postfix until the recipient's messageNew webhook arrives (p50/p99);
  - submit requests accepted per second (wrk, 50 connections) and messages delivered per second
    from the outbox to the local Postfix.
Run through scripts/bench-delivery.sh, which starts the services and sets the environment.
"""
import asyncio, json, os, smtplib, socket, statistics, subprocess, sys, threading, time, urllib.request

BIN = os.environ["EE_BIN"]; REDIS = os.environ["EE_REDIS_URL"]; REDIS_PORT = os.environ["EE_REDIS_PORT"]
IMAP_PORT = int(os.environ["IMAP_PORT"]); SMTP_PORT = int(os.environ["SMTP_PORT"])
EVENTS = int(os.environ.get("BENCH_EVENTS", "20000")); SAMPLES = int(os.environ.get("BENCH_SAMPLES", "40"))
QUEUED = int(os.environ.get("BENCH_QUEUED", "1000"))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def redis(*args):
    return subprocess.run(["redis-cli", "-p", REDIS_PORT, "-n", "8", *map(str, args)], capture_output=True, text=True, check=True).stdout.strip()


class Receiver:
    """Counts POSTs; remembers when each event type arrived."""
    def __init__(self):
        self.port = free_port(); self.count = 0; self.arrivals = []
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
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.count += 1
                if b'"messageNew"' in body:
                    self.arrivals.append((time.monotonic(), body))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


class Server:
    def __init__(self, prefix, *extra):
        self.port = free_port(); self.prefix = prefix
        env = dict(os.environ, EENGINE_REDIS=REDIS, EENGINE_REDIS_PREFIX=prefix)
        self.token = subprocess.run([BIN, "tokens", "issue"], env=env, capture_output=True, text=True, check=True).stdout
        self.proc = subprocess.Popen([BIN, f"--api.port={self.port}", "--log.level=warn", *extra], env=env,
                                     stdout=open(f"/tmp/{prefix}.log", "w"), stderr=subprocess.STDOUT)
        while True:
            try:
                self.call("GET", "/health"); break
            except OSError:
                time.sleep(0.01)

    def call(self, method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    def stop(self):
        self.proc.terminate(); self.proc.wait(10)


def wait(pred, timeout=300, step=0.005):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(step)
    raise TimeoutError


def fanout():
    rx = Receiver()
    srv = Server(f"bench-fan-{os.getpid()}")
    srv.call("POST", "/v1/settings", {"webhooks": f"http://127.0.0.1:{rx.port}/hook", "webhooksEnabled": True})
    time.sleep(1.5)
    base = rx.count
    # Write events straight into the log, spread over 100 accounts, in one pipeline.
    payload = json.dumps({"serviceUrl": None, "account": "x", "event": "messageNew", "data": {"id": "AAAAAQAAAAE"}})
    cmds = "".join(f'XADD {srv.prefix}:events * account a{i % 100} event messageNew payload {json.dumps(payload)}\n' for i in range(EVENTS))
    start = time.monotonic()
    subprocess.run(["redis-cli", "-p", REDIS_PORT, "-n", "8"], input=cmds, text=True, capture_output=True, check=True)
    took = wait(lambda: rx.count - base >= EVENTS, step=0.01)
    took = time.monotonic() - start
    print(f"webhook fan-out: {EVENTS} events to a local receiver in {took:.2f} s = {EVENTS / took:.0f} events/s (100 accounts, default concurrency)")
    srv.stop()


def latency():
    rx = Receiver()
    srv = Server(f"bench-whlat-{os.getpid()}")
    user = f"whlat{os.getpid()}@example.com"
    srv.call("POST", "/v1/settings", {"webhooks": f"http://127.0.0.1:{rx.port}/hook", "webhooksEnabled": True})
    srv.call("POST", "/v1/account", {"account": "lat", "name": "lat", "email": user,
        "imap": {"host": "127.0.0.1", "port": IMAP_PORT, "secure": False, "auth": {"user": user, "pass": "pass"}}})
    wait(lambda: srv.call("GET", "/v1/account/lat")["state"] == "connected")
    samples = []
    for i in range(SAMPLES):
        seen = len(rx.arrivals)
        t = time.monotonic()
        with smtplib.SMTP("127.0.0.1", SMTP_PORT) as s:
            s.sendmail("bob@example.com", [user], f"Subject: wh {i}\r\nTo: {user}\r\n\r\nhi\r\n")
        wait(lambda: len(rx.arrivals) > seen, timeout=30, step=0.001)
        samples.append((rx.arrivals[seen][0] - t) * 1000)
        time.sleep(0.25)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"SMTP hand-off -> messageNew webhook received: p50 {statistics.median(samples):.0f} ms, p99 {p99:.0f} ms, min {samples[0]:.0f} ms ({len(samples)} messages)")
    srv.stop()


def submit():
    srv = Server(f"bench-submit-{os.getpid()}")
    user = f"sender{os.getpid()}@example.com"
    srv.call("POST", "/v1/account", {"account": "s", "name": "s", "email": user,
        "smtp": {"host": "127.0.0.1", "port": SMTP_PORT, "secure": False}})
    body = json.dumps({"to": [{"address": f"rcpt{os.getpid()}@example.com"}], "subject": "bench", "text": "hello"})
    script = f"/tmp/bench-submit-{os.getpid()}.lua"
    with open(script, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {srv.token}"\n')
    out = subprocess.run(["wrk", "-t2", "-c50", "-d5s", "-s", script, f"http://127.0.0.1:{srv.port}/v1/account/s/submit"],
                         capture_output=True, text=True).stdout
    rps = next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec"))
    print(f"submit accepted: {float(rps):.0f} requests/s (wrk -t2 -c50 5s; every one queued and then delivered)")
    queued = int(redis("ZCARD", f"{srv.prefix}:outbox:due"))
    start = time.monotonic()
    remaining = lambda: int(redis("ZCARD", f"{srv.prefix}:outbox:due"))
    wait(lambda: remaining() == 0, timeout=900, step=0.2)
    took = time.monotonic() - start
    print(f"delivery to the local Postfix: {queued} messages still queued after the load drained in {took:.1f} s = {queued / took:.0f} messages/s")
    srv.stop()


if __name__ == "__main__":
    which = sys.argv[1:] or ["fanout", "latency", "submit"]
    if "fanout" in which: fanout()
    if "latency" in which: latency()
    if "submit" in which: submit()
