"""The wss:// phases of bench/run (issue #15.9): `--phases tls`.

The same servers as the other phases, each serving wss:// with one self-signed ECDSA P-256
certificate that the run generates (openssl CLI, in its temp dir):

  wsbridge  a [[listeners]] with [listeners.tls] cert_file and key_file (the defaults otherwise)
  node      the Node bridge over https + ws: index.mjs --tls-cert --tls-key (https.createServer)
  lws       the bare lws peer with the certificate (lws's OpenSSL defaults): our stack's ceiling

and three measurements, each on a fresh server process, alternating the servers round by round
(--tls-rounds rounds):

  tls-handshake  --tls-clients clients in a loop (load generator `handshake` mode, --tls-procs
                 processes): connect, a full TLS handshake (the client keeps no session and
                 offers no ticket: never resumed, checked), the WebSocket upgrade to /mqtt, a
                 close frame and the server's answer, then again, for --tls-duration seconds:
                 handshakes/s, the server's CPU per handshake, the latency connect -> 101
  tls-max        the closed-loop fan-out of the max phase (--subscribers, --window) over wss://
  tls-idle       --tls-idle-steps idle wss:// connections, subscribed: the server's RSS delta
                 from before the first connection to the largest step, divided by its count
                 (and, for comparison with the idle phase, the slope over the steps)

Targets (the issue's, against Node): handshakes/s >= 2x, fan-out max >= 3x, idle RSS per TLS
connection <= 0.5x. A wsbridge binary without [listeners.tls] (before #15's core) is left out,
said in the report: the phase then measures the peers only.
"""
import os
import subprocess
import time

SERVERS = ("wsbridge", "node", "lws")
LABELS = {"wsbridge": "wsbridge wss://", "node": "Node (https + ws)", "lws": "bare lws wss://"}


def make_certificate(ctx):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, valid for two days."""
    crt = os.path.join(ctx.workdir, "tls-server.crt")
    key = os.path.join(ctx.workdir, "tls-server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return crt, key


def tls_listener_lines(crt, key):
    # After the listener's own keys: the sub-table ends the [[listeners]] entry's plain keys.
    return f'permessage_deflate = false\n\n[listeners.tls]\ncert_file = "{crt}"\nkey_file = "{key}"'


def wsbridge_has_tls(ctx, crt, key):
    """True when this wsbridge binary takes [listeners.tls] (the core of issue #15)."""
    path = os.path.join(ctx.workdir, "tls-check.toml")
    with open(path, "w") as f:
        f.write('[[listeners]]\naddress = "127.0.0.1"\nport = 1\n' + tls_listener_lines(crt, key) + "\n")
    r = subprocess.run([ctx.wsbridge_binary, "--check-config", path], capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def make_servers(ctx, h, log):
    a = ctx.args
    crt, key = make_certificate(ctx)
    tls_args = ["--tls-cert", crt, "--tls-key", key]

    class WsbridgeTls(h.Wsbridge):
        scheme = "wss"

    class NodeTls(h.NodeBridge):
        scheme = "wss"

        def argv(self):
            return super().argv() + tls_args

    class LwsTls(h.LwsBroadcast):
        scheme = "wss"

        def argv(self):
            return super().argv() + tls_args

    servers = []
    ctx.tls_note = ""
    for name in [n for n in a.tls_servers.split(",") if n]:
        if name not in SERVERS:
            raise SystemExit(f"--tls-servers: unknown {name!r} (one of {', '.join(SERVERS)})")
        if name == "wsbridge":
            ok, why = wsbridge_has_tls(ctx, crt, key)
            if not ok:
                ctx.tls_note = "this wsbridge binary has no [listeners.tls] yet: measured on the peers only"
                log(f"tls: {ctx.tls_note} ({why[:200]})")
                continue
            s = WsbridgeTls(ctx, name="wsbridge_tls", label=LABELS[name], listener=tls_listener_lines(crt, key))
        elif name == "node":
            s = NodeTls(ctx, name="node_tls", label=LABELS[name])
        else:
            if a.publisher == "ws":
                continue  # fed by MQTT only
            s = LwsTls(ctx)
            s.name, s.label = "lws_tls", LABELS[name]
        s.kind = name
        servers.append(s)
    return servers


def handshake(ctx, h, server):
    a = ctx.args
    argv = ["handshake", "--url", server.url("/mqtt"), "--connections", str(a.tls_clients),
            "--procs", str(a.tls_procs), "--duration", str(a.tls_duration), "--warmup", str(a.warmup),
            "--settle", str(a.settle), "--source-ips", "4"]
    cpu = {}

    def on_ready(ev):
        cpu["start"] = h.proc_cpu_seconds(server.proc.pid)
        cpu["machine"] = h.machine_busy_seconds()
        cpu["t"] = time.monotonic()

    _, r = h.run_loadgen(ctx, argv, on_ready)
    cpu_s = h.proc_cpu_seconds(server.proc.pid) - cpu["start"]
    machine_s = h.machine_busy_seconds() - cpu["machine"]
    wall = max(time.monotonic() - cpu["t"], 1e-9)
    n = max(r["handshakes"], 1)
    lat = r["latency_us"]
    loadgen_s = r["loadgen_run_cpu_seconds"]
    return {
        "handshakes_per_s": r["handshakes_per_second"],
        "cpu_us_per_handshake": cpu_s / n * 1e6,
        "cpu_util": cpu_s / wall,
        "loadgen_us_per_handshake": loadgen_s / n * 1e6,
        "loadgen_cpu_util": loadgen_s / wall,
        # What else ran meanwhile (other builds and tests on a shared machine), in cores.
        "other_load": max(0.0, machine_s - cpu_s - loadgen_s) / wall,
        "p50_us": lat["p50"], "p99_us": lat["p99"],
        "resumed": r["tls"]["resumed"], "protocol": r["tls"]["protocol"],
        "errors": r["errors"]["total"],
    }


def idle(ctx, h, server):
    steps = ctx.args.tls_idle_steps
    v = h.idle(ctx, server, steps=steps)
    n = max(steps)
    if v.get("rss_at_max") is not None and v.get("rss_base") is not None:
        v["rss_delta_per_conn"] = (v["rss_at_max"] - v["rss_base"]) / n
    return v


def run(ctx, h, each_round, results, problems, log):
    """results["tls-handshake"|"tls-max"|"tls-idle"] hold the rows."""
    a = ctx.args
    servers = make_servers(ctx, h, log)
    ctx.tls_servers_run = servers
    if not servers:
        return
    rounds = a.tls_rounds

    def checked(what, fn):
        def measure(s):
            v = fn(s)
            if v.get("resumed"):
                problems.append(f"{what} {s.name}: {v['resumed']} TLS sessions resumed (all must be full handshakes)")
            return v
        return measure

    each_round("tls-handshake", checked("tls-handshake", lambda s: handshake(ctx, h, s)), servers, rounds)
    fan_extra = ["--procs", str(a.tls_procs)]
    each_round("tls-max", lambda s: h.fanout(ctx, s, 0, extra=fan_extra), servers, rounds)
    each_round("tls-idle", lambda s: idle(ctx, h, s), servers, rounds)


ROWS = [
    # (measurement, key, label, unit)
    ("handshake", "handshakes_per_s", "full TLS handshakes + upgrade + close per second", "/s"),
    ("handshake", "cpu_us_per_handshake", "server CPU per handshake (incl. upgrade and close)", "µs"),
    ("handshake", "cpu_util", "server CPU use during the handshakes (1.0 = one core)", "cores"),
    ("handshake", "loadgen_us_per_handshake", "load generator CPU per handshake (client side)", "µs"),
    ("handshake", "loadgen_cpu_util", "load generator CPU use during the handshakes", "cores"),
    ("handshake", "other_load", "CPU of other processes during the handshakes (not server, load generator)", "cores"),
    ("handshake", "p50_us", "handshake latency connect → 101, p50", "µs"),
    ("handshake", "p99_us", "handshake latency connect → 101, p99", "µs"),
    ("handshake", "errors", "handshake: errors", ""),
    ("max", "delivered_per_s", "wss:// fan-out max: delivered messages/s", "msg/s"),
    ("max", "cpu_us_per_msg", "wss:// fan-out max: server CPU per delivered message", "µs"),
    ("max", "cpu_util", "wss:// fan-out max: server CPU use", "cores"),
    ("max", "p99_us", "wss:// fan-out max: latency p99 (queues full)", "µs"),
    ("max", "loadgen_cpu_util", "wss:// fan-out max: load generator CPU (it decrypts)", "cores"),
    ("max", "other_load", "wss:// fan-out max: CPU of other processes", "cores"),
    ("max", "errors", "wss:// fan-out max: connection errors", ""),
    ("max", "missing", "wss:// fan-out max: missing messages", ""),
    ("idle", "rss_delta_per_conn", "idle wss:// connection: RSS delta / N at the largest step", "B"),
    ("idle", "rss_per_conn", "idle wss:// connection: RSS per connection (slope over the steps)", "B"),
    ("idle", "pss_per_conn", "idle wss:// connection: PSS per connection (slope)", "B"),
    ("idle", "errors", "idle: connection errors", ""),
]

TARGETS = [
    # (measurement, key, label, limit, higher is better)
    ("handshake", "handshakes_per_s", "TLS handshakes/s, wsbridge/Node", 2.0, True),
    ("max", "delivered_per_s", "wss:// fan-out max, wsbridge/Node", 3.0, True),
    ("idle", "rss_delta_per_conn", "memory per idle TLS connection, wsbridge/Node", 0.5, False),
]


def per_round(results, measurement, name, key):
    return [(row.get(name) or {}).get(key) for row in results.get(f"tls-{measurement}", [])]


def render(ctx, results, h):
    """The wss:// table and the issue #15.9 targets; returns (markdown, verdicts)."""
    servers = getattr(ctx, "tls_servers_run", [])
    names = [s.name for s in servers]
    if not names or "tls-handshake" not in results:
        return "", []
    head = "| figure | " + " | ".join(s.label for s in servers) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    for m, key, label, unit in ROWS:
        vals = {n: per_round(results, m, n, key) for n in names}
        if all(v is None for vs in vals.values() for v in vs):
            continue
        lines.append(f"| {label}{' (' + unit + ')' if unit else ''} | "
                     + " | ".join(h.cell(vals[n]) for n in names) + " |")
    protocols = sorted({v for n in names for v in per_round(results, "handshake", n, "protocol") if v})
    if protocols:
        lines += ["", "Negotiated: " + ", ".join(f"`{p}`" for p in protocols) + "."]
    verdicts = []
    if "wsbridge_tls" in names and "node_tls" in names:
        lines += ["", "Targets (issue #15.9); ratios are per round, median (min–max):", "",
                  "| target | measured | met |", "|---|---|---|"]
        for m, key, label, limit, higher in TARGETS:
            text, med = h.ratio_cell(per_round(results, m, "wsbridge_tls", key), per_round(results, m, "node_tls", key))
            ok = None if med is None else (med >= limit if higher else med <= limit)
            met = "n/a" if ok is None else ("yes" if ok else "**no**")
            sign = "≥" if higher else "≤"
            lines.append(f"| {label} {sign} {limit:g}× | {text} | {met} |")
            verdicts.append((label, f"{sign} {limit:g}×", met, med))
    elif getattr(ctx, "tls_note", ""):
        lines += ["", f"No targets: {ctx.tls_note}."]
    return "\n".join(lines), verdicts
