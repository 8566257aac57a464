#!/usr/bin/env python3
"""Sending parity figures (issue #12), on the embedded store and on Redis in the same run, as
medians of RUNS runs:

  - a 10,000-recipient mailMerge (scheduled an hour ahead, so nothing is sent meanwhile):
    time to the response, and to all 10,000 entries queued (checked in the outbox)
  - GET /redirect and GET /open.gif with signed links, wrk -t2 -c50; each request verifies the
    HMAC and writes its trackClick/trackOpen event. The floor in the same run: an unknown
    route of the same server (routing and a JSON 404, no store access).

Run through scripts/bench-sending.sh, which starts Redis and sets the environment.
"""
import base64, hashlib, hmac, json, os, re, statistics, subprocess, sys, time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(__file__))
import store_bench as sb  # noqa: E402  (same harness: Env, Server, wrk)

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SECS = int(os.environ.get("BENCH_SECS", "10"))
RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", "10000"))
SECRET = "bench-secret"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(blob):
    raw = json.dumps(blob, separators=(",", ":")).encode()
    return f"data={b64(raw)}&sig={b64(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest())}"


def wrk_any(url, seconds):
    """Requests per second whatever the status (the redirect answers 302, the floor 404)."""
    cmd = ["wrk", "-t2", "-c50", f"-d{seconds}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Socket errors" in out:
        raise RuntimeError("socket errors:\n" + out)
    return float(next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")))


def status_of(url):
    import urllib.request, urllib.error
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    try:
        return urllib.request.build_opener(NoRedirect).open(url, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code


def prepare(kind):
    env = sb.Env(kind, "sending")
    srv = sb.Server(env)
    srv.call("POST", "/v1/settings", {"serviceSecret": SECRET, "serviceUrl": f"http://127.0.0.1:{srv.port}/"})
    srv.call("POST", "/v1/account", {"account": "bench", "name": "Bench", "email": "bench@example.com",
                                     "smtp": {"host": "127.0.0.1", "port": 9, "auth": {"user": "u", "pass": "p"}}})
    return env, srv


def merge_once(srv):
    send_at = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    body = {"subject": "Hello {{params.name}}", "html": "<p>Dear {{params.name}}</p>", "sendAt": send_at,
            "listId": "bench", "mailMerge": [{"to": {"address": f"r{i}@example.com"}, "params": {"name": f"R{i}"}}
                                              for i in range(RECIPIENTS)]}
    before = srv.call("GET", "/v1/outbox?pageSize=1")["total"]
    start = time.perf_counter()
    answer = srv.call("POST", "/v1/account/bench/submit", body)
    responded = time.perf_counter() - start
    assert len(answer["mailMerge"]) == RECIPIENTS and all(e.get("queueId") for e in answer["mailMerge"]), answer["mailMerge"][:2]
    sb.wait(lambda: srv.call("GET", "/v1/outbox?pageSize=1")["total"] >= before + RECIPIENTS, timeout=120)
    queued = time.perf_counter() - start
    return responded, queued


def links(kind):
    env, srv = prepare(kind)
    base = f"http://127.0.0.1:{srv.port}"
    click = base + "/redirect?" + signed({"act": "click", "url": "https://example.org/", "acc": "bench", "msg": "<m@x>"})
    opened = base + "/open.gif?" + signed({"act": "open", "acc": "bench", "msg": "<m@x>"})
    assert (status_of(click), status_of(opened), status_of(base + "/no-such-route")) == (302, 200, 404)
    out = {"redirect": wrk_any(click, SECS), "open.gif": wrk_any(opened, SECS),
           "floor (404)": wrk_any(base + "/no-such-route", SECS)}
    events = srv.call("GET", "/v1/stats")
    out["events"] = events
    srv.stop()
    return out


def merges(kind):
    env, srv = prepare(kind)
    out = [merge_once(srv) for _ in range(RUNS)]
    srv.stop()
    return out


def main():
    results = {}
    for kind in sb.STORES:
        results[kind] = {"merge": merges(kind), "links": [links(kind) for _ in range(RUNS)]}
    print(f"runs: {RUNS}, wrk -t2 -c50 -d{SECS}s, mailMerge of {RECIPIENTS}")
    print("| figure | embedded | Redis |")
    print("|---|---|---|")
    med = lambda xs: statistics.median(xs)
    for i, name in [(0, "mailMerge: time to response (s)"), (1, "mailMerge: time to all queued (s)")]:
        row = [f"{med([m[i] for m in results[k]['merge']]):.2f}" for k in sb.STORES]
        print(f"| {name} | {' | '.join(row)} |")
    for route in ["redirect", "open.gif", "floor (404)"]:
        row = [f"{med([l[route] for l in results[k]['links']]):,.0f}" for k in sb.STORES]
        print(f"| GET /{route} req/s | {' | '.join(row)} |")


if __name__ == "__main__":
    main()
