"""The fallback phase of bench/run (issue #16.6): `--phases fallback`.

wsbridge's HTTP fallback transports (docs/FALLBACK.md) against Socket.IO's long-polling
transport, the same MQTT fan-out to each, from the run's one mosquitto:

  fb_sse    wsbridge, the JSON route /mqtt reached over SSE (GET /_wsbridge/sse/mqtt; the stream
            opened again with ?s=TOKEN&last=N each time the server ends it at sse_byte_limit)
  fb_poll   the same wsbridge route over long-polling (GET /_wsbridge/poll/mqtt?s=TOKEN&last=N)
  sio       bench/peers/socketio-bridge: socket.io 4 with transports: ['polling'] and the mqtt
            package, one Node process (npm ci from its package-lock.json)

wsbridge runs with [server] threads = 1 (--fallback-threads), the other [fallback] keys at their
defaults (sse_byte_limit 128 KiB, poll_timeout 25 s): one service thread against Node's one event
loop. Each session subscribes with the JSON protocol's subscribe (a POST to /_wsbridge/send) or
Socket.IO's `subscribe` event with an ack, and is counted ready at its ack. The load generator
(wsbridge-loadgen --transport sse|poll|sio, bench/loadgen/child_http.cpp) speaks all three on
epoll in C++, so that it is not the limit: its CPU is reported beside the server's.

Each measurement runs on a fresh server, the servers alternating round by round
(--fallback-rounds):

  fb-max   closed loop: --fallback-subscribers sessions on one topic, the publisher keeps at most
           W messages per session in flight, for each W of --fallback-windows; each server's best
           W is kept: delivered messages/s, server CPU per delivered message, CPU use of the
           server, the load generator and mosquitto
  fb-rate@R  the same sessions at each R of --fallback-rates messages/s per session (20 and 60 by
           default: 10,000 and 30,000 deliveries/s to 500 sessions, where every server has
           headroom, and where Socket.IO nears one core): latency p50/p99 from the publisher's
           clock to the session's recv(), server CPU per delivered message
  fb-idle  --fallback-idle-steps idle sessions (open, subscribed, an SSE stream or a poll
           waiting): the server's PSS (and RSS) delta from before the first one, divided by N

Targets (the issue's, against Socket.IO's polling): throughput >= 3x, p99 at a moderate rate
<= 0.5x, memory per session <= 0.5x, for SSE and for long-polling each. CPU per message is
reported with no target.
"""
import os
import subprocess
import time

SERVERS = ("sse", "poll", "sio")
NAMES = {"sse": "fb_sse", "poll": "fb_poll", "sio": "sio"}
LABELS = {"sse": "wsbridge SSE", "poll": "wsbridge long-polling", "sio": "Socket.IO polling"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "bench", "peers", "socketio-bridge")


def ensure_peer(log):
    if not os.path.exists(os.path.join(PEER, "node_modules", "socket.io")):
        log("installing the Socket.IO peer's packages (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER, check=True)


def npm_version(pkg):
    try:
        import json
        with open(os.path.join(PEER, "node_modules", pkg, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def make_servers(ctx, h):
    class WsbridgeFallback(h.Wsbridge):
        def config(self):
            text = super().config()
            threads = self.ctx.args.fallback_threads
            if "threads = " in text.split("[limits]")[0]:
                head, rest = text.split("[limits]", 1)
                head = "\n".join(l for l in head.splitlines() if not l.startswith("threads = ")) + "\n"
                text = head + "[limits]" + rest
            return text.replace("[server]\n", f"[server]\nthreads = {threads}\n", 1)

    class SocketIo(h.Server):
        def __init__(self, ctx):
            super().__init__(NAMES["sio"], LABELS["sio"], ctx)

        def argv(self):
            return ["node", os.path.join(PEER, "index.mjs"), "--port", str(self.port),
                    "--mqtt", f"mqtt://127.0.0.1:{self.ctx.mosquitto.port}"]

        def is_warning(self, line):
            line = line.strip()
            return bool(line) and not line.startswith('{"event":"listening"')

        def url(self, path):  # the load generator's --url: Socket.IO's path
            return f"ws://127.0.0.1:{self.port}/socket.io/"

    servers = []
    for kind in [k for k in ctx.args.fallback_servers.split(",") if k]:
        if kind not in SERVERS:
            raise SystemExit(f"--fallback-servers: unknown {kind!r} (one of {', '.join(SERVERS)})")
        if kind == "sio":
            s = SocketIo(ctx)
        else:
            s = WsbridgeFallback(ctx, name=NAMES[kind], label=LABELS[kind])
        s.transport = kind
        servers.append(s)
    return servers


def fanout(ctx, h, server, rate, window):
    a = ctx.args
    argv = ["fanout", "--transport", server.transport, "--url", server.url("/mqtt"),
            "--subscribers", str(a.fallback_subscribers), "--topic", "bench/fanout",
            "--publisher", f"mqtt://127.0.0.1:{ctx.mosquitto.port}", "--rate", str(rate),
            "--window", str(window), "--duration", str(a.fallback_duration), "--warmup", str(a.warmup),
            "--payload", str(a.payload), "--drain-quiet", str(a.drain_quiet), "--settle", str(a.settle),
            "--procs", str(a.fallback_procs)]
    cpu = {}

    def on_ready(ev):
        cpu["start"] = h.proc_cpu_seconds(server.proc.pid)
        cpu["mosq"] = h.proc_cpu_seconds(ctx.mosquitto.proc.pid)
        cpu["machine"] = h.machine_busy_seconds()
        cpu["t"] = time.monotonic()

    _, r = h.run_loadgen(ctx, argv, on_ready, timeout=120)
    cpu_s = h.proc_cpu_seconds(server.proc.pid) - cpu["start"]
    mosq_s = h.proc_cpu_seconds(ctx.mosquitto.proc.pid) - cpu["mosq"]
    machine_s = h.machine_busy_seconds() - cpu["machine"]
    wall = max(time.monotonic() - cpu["t"], 1e-9)
    loadgen_s = r["loadgen_run_cpu_seconds"]
    n = max(r["delivered"], 1)
    lat = r["latency_us"]
    http = r.get("http") or {}
    return {
        "delivered_per_s": r["delivered_per_second"],
        "published_per_s": r["publish_rate"],
        "cpu_us_per_msg": cpu_s / n * 1e6,
        "cpu_util": cpu_s / wall,
        "mosquitto_util": mosq_s / wall,
        "loadgen_cpu_util": loadgen_s / max(r["publish_seconds"], 1e-9),
        "loadgen_us_per_msg": loadgen_s / n * 1e6,
        "other_load": max(0.0, machine_s - cpu_s - mosq_s - loadgen_s) / wall,
        "p50_us": lat["p50"], "p99_us": lat["p99"], "p999_us": lat["p999"], "max_us": lat["max"],
        "missing": r["missing"], "duplicates": r["duplicates"],
        "errors": r["errors"]["total"] + (r["connections"] - r["ready"]),
        # Down requests (streams opened, polls) per delivered message, and SSE streams the server
        # ended at sse_byte_limit (opened again by the client).
        "requests_per_msg": http.get("requests", 0) / n,
        "msgs_per_request": n / max(http.get("requests", 0), 1),
        "reconnects": http.get("reconnects", 0),
        "lost": http.get("lost", 0),
    }


def fanout_max(ctx, h, server):
    """The closed loop at each of --fallback-windows on the same server: its best, with its window
    (a polling client gets more per answer with more in flight; each server gets its best)."""
    runs = {}
    for i, w in enumerate(ctx.args.fallback_windows):
        if i > 0:  # a fresh server for each window, as for every measurement
            server.stop()
            server.start()
        runs[w] = fanout(ctx, h, server, 0, w)
    w, best = max(runs.items(), key=lambda kv: kv[1]["delivered_per_s"])
    return dict(best, window=w, errors=sum(v["errors"] for v in runs.values()),
                missing=sum(v["missing"] for v in runs.values()),
                by_window={k: round(v["delivered_per_s"]) for k, v in runs.items()})


def idle(ctx, h, server):
    a = ctx.args
    steps = a.fallback_idle_steps
    time.sleep(a.idle_settle)
    base = h.proc_memory(server.proc.pid)
    points = []

    def on_ready(ev):
        time.sleep(a.idle_settle)
        points.append((ev["target"], ev["ready"], h.proc_memory(server.proc.pid)))

    argv = ["idle", "--transport", server.transport, "--url", server.url("/mqtt"),
            "--steps", ",".join(str(s) for s in steps), "--topic", "bench/idle",
            "--publisher", f"mqtt://127.0.0.1:{ctx.mosquitto.port}", "--procs", "1"]
    _, r = h.run_loadgen(ctx, argv, on_ready, timeout=120)
    out = {"errors": r["errors"]["total"] + (max(steps) - r["ready"]),
           "points": [(n, ready, m["rss"], m["pss"]) for n, ready, m in points]}
    for n, ready, m in points:
        full = ready == n
        out[f"pss_at_{n}"] = (m["pss"] - base["pss"]) / n if full else None
        out[f"rss_at_{n}"] = (m["rss"] - base["rss"]) / n if full else None
    full_points = [(n, m["pss"]) for n, ready, m in points if ready == n]
    out["pss_slope"] = h.slope(full_points)[0] if len(full_points) >= 2 else None
    return out


def rate_phase(rate):
    return f"fb-rate@{rate:g}"


def run(ctx, h, each_round, results, problems, log):
    a = ctx.args
    ensure_peer(log)
    servers = make_servers(ctx, h)
    ctx.fallback_servers_run = servers
    if not servers:
        return
    rounds = a.fallback_rounds
    if a.fallback_windows:  # (--fallback-windows "": the rates and idle phases alone)
        each_round("fb-max", lambda s: fanout_max(ctx, h, s), servers, rounds)
    for rate in a.fallback_rates:
        log(f"fb-rate: {rate:g} messages/s to {a.fallback_subscribers} sessions")
        each_round(rate_phase(rate), lambda s, rate=rate: fanout(ctx, h, s, rate, a.window), servers, rounds)
    if a.fallback_idle_steps:
        each_round("fb-idle", lambda s: idle(ctx, h, s), servers, rounds)


# ---------------------------------------------------------------------------------------------
# The report

ROWS = [
    # (phase, key, label, unit)
    ("fb-max", "delivered_per_s", "fan-out max: delivered messages/s", "msg/s"),
    ("fb-max", "window", "fan-out max: the best window (messages in flight per session)", ""),
    ("fb-max", "cpu_us_per_msg", "fan-out max: server CPU per delivered message", "µs"),
    ("fb-max", "cpu_util", "fan-out max: server CPU use (1.0 = one core)", "cores"),
    ("fb-max", "loadgen_cpu_util", "fan-out max: load generator CPU use", "cores"),
    ("fb-max", "loadgen_us_per_msg", "fan-out max: load generator CPU per delivered message", "µs"),
    ("fb-max", "mosquitto_util", "fan-out max: mosquitto CPU use", "cores"),
    ("fb-max", "other_load", "fan-out max: CPU of other processes", "cores"),
    ("fb-max", "msgs_per_request", "fan-out max: messages per down request (poll answer or stream)", ""),
    ("fb-max", "reconnects", "fan-out max: SSE streams ended at sse_byte_limit and opened again", ""),
    ("fb-max", "p99_us", "fan-out max: latency p99 (closed loop, queues full)", "µs"),
    ("fb-max", "missing", "fan-out max: missing messages", ""),
    ("fb-max", "errors", "fan-out max: errors", ""),
]
RATE_ROWS = [
    ("delivered_per_s", "delivered messages/s", "msg/s"),
    ("p50_us", "latency p50", "µs"),
    ("p99_us", "latency p99", "µs"),
    ("p999_us", "latency p99.9", "µs"),
    ("cpu_us_per_msg", "server CPU per delivered message", "µs"),
    ("cpu_util", "server CPU use", "cores"),
    ("loadgen_cpu_util", "load generator CPU use", "cores"),
    ("msgs_per_request", "messages per down request", ""),
    ("missing", "missing messages", ""),
    ("errors", "errors", ""),
]


def rate_rows(a):
    rows = []
    for rate in a.fallback_rates:
        what = f"{rate:g} msg/s ({rate * a.fallback_subscribers:,.0f} deliveries/s)"
        rows += [(rate_phase(rate), key, f"{what}: {label}", unit) for key, label, unit in RATE_ROWS]
    return rows


def window_rows(results, names, a):
    """The closed loop's delivered messages/s at each window tried."""
    rows = []
    for w in a.fallback_windows:
        rows.append((w, {n: [((row.get(n) or {}).get("by_window") or {}).get(w) for row in results.get("fb-max", [])]
                         for n in names}))
    return rows

def targets(a):
    """(phase, key, label, limit, higher is better) of the issue, then the ratios it asks for
    with no target (limit None)."""
    out = [("fb-max", "delivered_per_s", "fan-out throughput (best window each)", 3.0, True)]
    out += [(rate_phase(r), "p99_us", f"p99 latency at {r:g} msg/s", 0.5, False) for r in a.fallback_rates]
    if a.fallback_idle_steps:
        top = max(a.fallback_idle_steps)
        out += [("fb-idle", f"pss_at_{top}", f"memory (PSS) per idle session at {top:,}", 0.5, False),
                ("fb-idle", "pss_slope", "memory (PSS slope) per idle session", None, False)]
    out += [("fb-max", "cpu_us_per_msg", "CPU per delivered message (fan-out max)", None, False)]
    out += [(rate_phase(r), "cpu_us_per_msg", f"CPU per delivered message at {r:g} msg/s", None, False)
            for r in a.fallback_rates]
    return out


def idle_rows(steps):
    rows = []
    for n in steps:
        rows += [("fb-idle", f"pss_at_{n}", f"{n:,} idle sessions: PSS delta / N", "B"),
                 ("fb-idle", f"rss_at_{n}", f"{n:,} idle sessions: RSS delta / N", "B")]
    rows += [("fb-idle", "pss_slope", "idle sessions: PSS slope over the steps", "B"),
             ("fb-idle", "errors", "idle: errors", "")]
    return rows


def per_round(results, phase, name, key):
    return [(row.get(name) or {}).get(key) for row in results.get(phase, [])]


def render(ctx, results, h):
    """The fallback table and the issue #16.6 targets; returns (markdown, verdicts)."""
    servers = getattr(ctx, "fallback_servers_run", [])
    names = [s.name for s in servers]
    if not names or not any(p.startswith("fb-") for p in results):
        return "", []
    a = ctx.args
    head = "| figure | " + " | ".join(s.label for s in servers) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    steps = a.fallback_idle_steps
    for w, vals in window_rows(results, names, a):
        lines.append(f"| fan-out closed loop, window {w}: delivered messages/s (msg/s) | "
                     + " | ".join(h.cell(vals[n]) for n in names) + " |")
    for phase, key, label, unit in ROWS + rate_rows(a) + idle_rows(steps):
        vals = {n: per_round(results, phase, n, key) for n in names}
        if all(v is None for vs in vals.values() for v in vs):
            continue
        if key in ("reconnects", "msgs_per_request") and all(not v for vs in vals.values() for v in vs):
            continue
        lines.append(f"| {label}{' (' + unit + ')' if unit else ''} | "
                     + " | ".join(h.cell(vals[n]) for n in names) + " |")
    verdicts = []
    sio = NAMES["sio"]
    ours = [s for s in servers if s.name != sio]
    if sio in names and ours:
        lines += ["", "Targets (issue #16.6), against Socket.IO's polling; ratios are per round, "
                  "median (min–max):", "", "| target | measured | met |", "|---|---|---|"]
        for s in ours:
            for phase, key, label, limit, higher in targets(a):
                text, med = h.ratio_cell(per_round(results, phase, s.name, key), per_round(results, phase, sio, key))
                if limit is None:
                    lines.append(f"| {label}, {s.label}/Socket.IO (no target) | {text} | |")
                    continue
                ok = None if med is None else (med >= limit if higher else med <= limit)
                met = "n/a" if ok is None else ("yes" if ok else "**no**")
                sign = "≥" if higher else "≤"
                lines.append(f"| {label}, {s.label}/Socket.IO {sign} {limit:g}× | {text} | {met} |")
                verdicts.append((f"{label}, {s.label}/Socket.IO", f"{sign} {limit:g}×", met, med))
    return "\n".join(lines), verdicts


def header(ctx):
    a = ctx.args
    return (f"HTTP fallback transports (bench/fallback.py): wsbridge's SSE and long-polling on its JSON "
            f"route /mqtt ([server] threads = {a.fallback_threads}, [fallback] defaults) against socket.io "
            f"{npm_version('socket.io')} (engine.io {npm_version('engine.io')}) with transports: ['polling'], "
            f"one Node process; {a.fallback_rounds} rounds; {a.fallback_subscribers} sessions on one topic, "
            f"{a.payload}-byte payloads published to mosquitto over TCP, {a.fallback_duration:g} s per run "
            f"({a.warmup:g} s warm-up not measured), closed loop at the best of windows "
            f"{','.join(map(str, a.fallback_windows))} per session (a fresh server for each), latency at "
            + ", ".join(f"{r:g}" for r in a.fallback_rates) + " messages/s per session (closed loop window "
            f"{a.window} as a bound); load generator: "
            f"{a.fallback_procs} process(es); idle: steps {','.join(map(str, a.fallback_idle_steps))} sessions.")


def smoke_checks(results):
    """(what, passed, detail) for bench/run --smoke."""
    checks = []
    for phase in [p for p in results if p == "fb-max" or p.startswith("fb-rate@")]:
        for r, row in enumerate(results.get(phase, [])):
            for name, v in row.items():
                ok = v is not None and v["delivered_per_s"] > 0 and v["errors"] == 0 and v["missing"] == 0
                checks.append((f"{phase} round {r + 1} {name}", ok,
                               v and {k: v[k] for k in ("delivered_per_s", "errors", "missing")}))
    for r, row in enumerate(results.get("fb-idle", [])):
        for name, v in row.items():
            ok = v is not None and v["errors"] == 0 and all(v.get(k) is not None for k in v if k.startswith("pss_at_"))
            checks.append((f"fb-idle round {r + 1} {name}", ok, v and {"errors": v["errors"]}))
    return checks
