"""The proxy phase of bench/run (issue #18.4): `--phases proxy`.

wsbridge's HTTP reverse proxy and WebSocket pass-through ([[proxy]], docs/PROXY.md) against the
two proxies a user would put in front of a legacy app instead, Debian's nginx and HAProxy, all
configured alike and proxying the same traffic to the same backends:

  wsbridge   [[proxy]] path "/" to the HTTP backend, [[proxy]] path "/echo" to the echo
             backend (ws://) with max_connections = 20000 (each relayed WebSocket holds one of
             the prefix's backend connections; the default 256 would turn the 257th upgrade
             into a 503 after 60 s), [server] threads = --proxy-threads
  nginx      worker_processes --proxy-threads; location / with proxy_http_version 1.1,
             Connection "" and an upstream with keepalive 64; location /echo with Upgrade and
             Connection "upgrade"
  haproxy    mode http, nbthread --proxy-threads, http-reuse always, /echo to its own backend
             (HAProxy relays the upgrade in mode http by itself; timeout tunnel 1h)
  direct     no proxy: the load generator on the backends themselves (their ceiling on this
             machine; no memory figure)

Every proxy forwards the client's address (X-Forwarded-For: wsbridge by default, nginx
proxy_add_x_forwarded_for, HAProxy option forwardfor), passes the client's Host, keeps its
client connections alive for as long as they are used (nginx keepalive_requests raised from
its default 1000, which would close every client connection after 1000 requests) and its
backend connections too. The backends, started once for the phase: the load generator's
`httpd` (a keep-alive HTTP/1.1 server answering every request with the same --proxy-http-body
bytes of JSON, one thread) and a wsbridge with an `adapter = "echo"` route ([server] threads =
--proxy-backend-threads). Each measurement runs on a fresh proxy, the proxies alternating round
by round (--proxy-rounds):

  proxy-http  --proxy-http-connections keep-alive connections sending GET requests in a closed
              loop (one in flight each) for --proxy-duration s: responses/s, latency p50/p99,
              the proxy's CPU per request
  proxy-echo  --proxy-ws-connections WebSockets through the pass-through to the echo backend,
              --proxy-ws-window text messages of --proxy-ws-payload bytes in flight each
              (closed loop): echoed messages/s, round trip p50/p99, CPU per message
  proxy-echo-light  the same with --proxy-ws-light-connections WebSockets, one message in flight
              each: the round trip through each proxy when nothing queues
  proxy-echo-busy  the proxy-echo load again while --proxy-busy-idle more WebSockets stay open
              and idle through the same proxy (and the same echo backend): what the active ones
              cost when the proxy holds many
  proxy-idle  --proxy-idle-steps WebSockets opened through the pass-through, each checked with
              one echo, then idle: the proxy's memory (PSS and RSS summed over its process tree:
              nginx's master and workers) from before the first one to each step, divided by
              the step's count

The servers and their configurations are in bench/proxy_servers.py, the table and the targets
in bench/proxy_report.py.

Targets (the issue's, against nginx): HTTP requests/s >= 0.8x, WebSocket messages/s >= 1x,
memory (PSS) per proxied WebSocket <= 1x. A wsbridge binary without [[proxy]] (before #18's
server side) is left out, said in the report: the phase then measures nginx and HAProxy only.
"""
import time

from mqtt_passthrough import tree_cpu_seconds, tree_memory
# The table, the targets and the smoke checks, which bench/run calls through this module.
from proxy_report import header, render, smoke_checks  # noqa: F401
from proxy_servers import ECHO_PATH, SERVERS, make_servers

PHASES = ("proxy-http", "proxy-echo", "proxy-echo-light", "proxy-echo-busy", "proxy-idle")
HTTP_PATH = "/api/items?page=1"


def add_arguments(ap):
    g = ap.add_argument_group("proxy (bench/proxy.py, issue #18.4)")
    g.add_argument("--proxy-servers", default="wsbridge,nginx,haproxy,direct",
                   help="proxy phase: comma list of " + ", ".join(SERVERS))
    g.add_argument("--proxy-rounds", type=int, default=3)
    g.add_argument("--proxy-threads", type=int, default=2,
                   help="wsbridge [server] threads, nginx worker_processes, HAProxy nbthread")
    g.add_argument("--proxy-backend-threads", type=int, default=1, help="the echo backend's [server] threads")
    g.add_argument("--proxy-duration", type=float, default=5.0, help="seconds per load run")
    g.add_argument("--proxy-warmup", type=float, default=1.0, help="first seconds of a load run not measured")
    g.add_argument("--proxy-procs", type=int, default=1, help="load generator processes of the load runs")
    g.add_argument("--proxy-http-connections", type=int, default=50, help="keep-alive client connections")
    g.add_argument("--proxy-http-body", type=int, default=512, help="the HTTP backend's response body bytes")
    g.add_argument("--proxy-ws-connections", type=int, default=50, help="echo: WebSockets")
    g.add_argument("--proxy-ws-window", type=int, default=1, help="echo: messages in flight per WebSocket")
    g.add_argument("--proxy-ws-payload", type=int, default=128, help="echo: message bytes")
    g.add_argument("--proxy-ws-light-connections", type=int, default=4,
                   help="echo under a light load (the round trip without queues): WebSockets, one "
                        "message in flight each; 0: not run")
    g.add_argument("--proxy-busy-idle", type=int, default=2000,
                   help="echo among idle WebSockets: this many more held open through the proxy "
                        "during the echo load; 0: not run")
    g.add_argument("--proxy-idle-steps", default="1000,2000", help="idle WebSockets through each proxy")


def smoke_args(a):
    a.proxy_servers = ",".join(s for s in a.proxy_servers.split(",") if s != "direct")
    a.proxy_rounds = 1
    a.proxy_duration = 0.6
    a.proxy_warmup = 0.1
    a.proxy_http_connections = 4
    a.proxy_ws_connections = 4
    a.proxy_ws_light_connections = 0  # the same as the smoke's echo run
    a.proxy_idle_steps = "100,200"
    a.proxy_busy_idle = 100


# ---------------------------------------------------------------------------------------------
# Measurements


def loaded_run(ctx, h, server, backend, argv, count_key, rate_key):
    """One load run: the loadgen's result, the proxy tree's and the backend's CPU over it."""
    cpu = {}
    proxied = server.proc is not None

    def on_ready(ev):
        cpu["proxy"] = tree_cpu_seconds(server.proc.pid) if proxied else 0.0
        cpu["backend"] = h.proc_cpu_seconds(backend.proc.pid)
        cpu["machine"] = h.machine_busy_seconds()
        cpu["t"] = time.monotonic()

    _, r = h.run_loadgen(ctx, argv, on_ready)
    proxy_s = tree_cpu_seconds(server.proc.pid) - cpu["proxy"] if proxied else 0.0
    backend_s = h.proc_cpu_seconds(backend.proc.pid) - cpu["backend"]
    machine_s = h.machine_busy_seconds() - cpu["machine"]
    wall = max(time.monotonic() - cpu["t"], 1e-9)
    loadgen_s = r["loadgen_run_cpu_seconds"]
    n = max(r[count_key], 1)
    lat = r["latency_us"]
    return {
        "per_s": r[rate_key],
        "cpu_us_per": proxy_s / n * 1e6 if proxied else None,
        "cpu_util": proxy_s / wall if proxied else None,
        "backend_util": backend_s / wall,
        "loadgen_util": loadgen_s / wall,
        "other_load": max(0.0, machine_s - proxy_s - backend_s - loadgen_s) / wall,
        "p50_us": lat["p50"], "p99_us": lat["p99"], "p999_us": lat["p999"], "max_us": lat["max"],
        "count": r[count_key],
        "reconnects": r["http"]["reconnects"],
        "errors": r["errors"]["total"] + r.get("non2xx", 0) + r["unanswered"] + (r["connections"] - r["ready"]),
    }


def http_load(ctx, h, server):
    a = ctx.args
    argv = ["http", "--url", server.url(HTTP_PATH), "--connections", str(a.proxy_http_connections),
            "--depth", "1", "--duration", str(a.proxy_duration), "--warmup", str(a.proxy_warmup),
            "--settle", str(a.settle), "--procs", str(a.proxy_procs)]
    return loaded_run(ctx, h, server, ctx.proxy_backends["http"], argv, "responses", "responses_per_second")


def echo_load(ctx, h, server, light=False):
    a = ctx.args
    connections, window = (a.proxy_ws_light_connections, 1) if light else (a.proxy_ws_connections, a.proxy_ws_window)
    argv = ["echo", "--url", server.url(ECHO_PATH), "--connections", str(connections),
            "--window", str(window), "--payload", str(a.proxy_ws_payload),
            "--duration", str(a.proxy_duration), "--warmup", str(a.proxy_warmup),
            "--settle", str(a.settle), "--procs", str(a.proxy_procs)]
    return loaded_run(ctx, h, server, ctx.proxy_backends["echo"], argv, "echoed", "messages_per_second")


def echo_among_idle(ctx, h, server):
    """The echo load while --proxy-busy-idle more WebSockets, each checked with one echo, stay
    open and idle through the same proxy (in another load generator): what the active ones cost
    when the proxy holds many, as a pass-through in front of an app's clients does."""
    a = ctx.args
    out = {}

    def on_ready(ev):
        out.update(echo_load(ctx, h, server))
        out["idle_open"] = ev["ready"]

    argv = ["idle", "--echo", "--url", server.url(ECHO_PATH), "--payload", "16",
            "--steps", str(a.proxy_busy_idle), "--procs", "1"]
    _, r = h.run_loadgen(ctx, argv, on_ready)
    out["errors"] = out.get("errors", 0) + r["errors"]["total"] + (a.proxy_busy_idle - r["ready"])
    return out


def idle(ctx, h, server):
    """The proxy tree's memory delta from before the first WebSocket, divided by the WebSockets,
    at each step all of whose connections were up (each answered one echo)."""
    if server.proc is None:
        return None  # direct: no proxy to measure
    a = ctx.args
    steps = a.proxy_idle_steps
    time.sleep(a.idle_settle)
    base = tree_memory(server.proc.pid)
    points = []

    def on_ready(ev):
        time.sleep(a.idle_settle)
        points.append((ev["target"], ev["ready"], tree_memory(server.proc.pid)))

    argv = ["idle", "--echo", "--url", server.url(ECHO_PATH), "--payload", "16",
            "--steps", ",".join(str(s) for s in steps), "--procs", "1"]
    _, r = h.run_loadgen(ctx, argv, on_ready)
    out = {"errors": r["errors"]["total"] + (max(steps) - r["ready"]),
           "rss_base": base["rss"], "pss_base": base["pss"],
           "points": [(n, ready, m["rss"], m["pss"], m["procs"]) for n, ready, m in points]}
    full = [(n, m) for n, ready, m in points if ready == n]
    for n, ready, m in points:
        out[f"pss_at_{n}"] = (m["pss"] - base["pss"]) / n if ready == n else None
        out[f"rss_at_{n}"] = (m["rss"] - base["rss"]) / n if ready == n else None
        out[f"ready_at_{n}"] = ready
    out["procs"] = points[-1][2]["procs"] if points else None
    out["pss_slope"], _ = h.slope([(n, m["pss"]) for n, m in full])
    out["rss_slope"], _ = h.slope([(n, m["rss"]) for n, m in full])
    if full:
        n, m = full[-1]
        out["pss_per_conn"] = (m["pss"] - base["pss"]) / n
        out["rss_per_conn"] = (m["rss"] - base["rss"]) / n
    return out


def run(ctx, h, each_round, results, problems, log):
    """results["proxy-http"|"proxy-echo"|"proxy-idle"] hold the rows."""
    a = ctx.args
    if isinstance(a.proxy_idle_steps, str):
        a.proxy_idle_steps = [int(s) for s in a.proxy_idle_steps.split(",") if s]
    servers = make_servers(ctx, h, log)
    ctx.proxy_servers_run = servers
    if not servers:
        return
    backends = ctx.proxy_backends
    try:
        for b in backends.values():
            b.start()
        rounds = a.proxy_rounds
        each_round("proxy-http", lambda s: http_load(ctx, h, s), servers, rounds)
        each_round("proxy-echo", lambda s: echo_load(ctx, h, s), servers, rounds)
        if a.proxy_ws_light_connections > 0:
            each_round("proxy-echo-light", lambda s: echo_load(ctx, h, s, light=True), servers, rounds)
        if a.proxy_busy_idle > 0:
            each_round("proxy-echo-busy", lambda s: echo_among_idle(ctx, h, s), servers, rounds)
        each_round("proxy-idle", lambda s: idle(ctx, h, s), [s for s in servers if s.kind != "direct"], rounds)
    except Exception as e:  # noqa: BLE001 - a backend that did not start: reported, the run goes on
        problems.append(f"proxy: {e}")
        log(problems[-1])
    finally:
        for b in backends.values():
            if b.proc is not None:
                b.stop()
