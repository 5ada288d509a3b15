"""The compression phase of bench/run (issue #20.5): permessage-deflate negotiated by every client.

--subscribers clients that offer `permessage-deflate; client_max_window_bits` (as browsers do) and
inflate what comes compressed, a telemetry-like JSON payload of --compression-payload bytes, and
for each server (--compression-servers):

  shared          wsbridge, compression = "shared" (one deflate per message for every subscriber)
  off             wsbridge, compression = "off" (the clients still offer deflate)
  per_connection  wsbridge, compression = "per_connection": libwebsockets' own per-connection deflate
                  in binaries before 2026-12-05, "shared" since (not in the default list)
  node            the Node bridge with ws's perMessageDeflate (index.mjs --deflate on)
  node_off        the Node bridge without it (what compression costs Node: node - node_off)

three measurements, each on a fresh server process, alternating the servers round by round:
the closed-loop fan-out maximum, a fan-out at half the Node bridge's compressed maximum (latency,
CPU per delivered message), and the memory per connection once every connection is subscribed and
has received --compression-messages messages (compression state is set up on a connection's first
compressed message, so an idle phase without messages would not see it).

The fan-outs run in --compression-procs load generator processes with --inflate-memo (see run());
one more closed-loop run of "shared" has every client inflate every message.

Before the core of issue #20 (the `compression` key) the wsbridge binary only has the legacy
`permessage_deflate = true|false`: then per_connection and off are measured that way and shared is
left out (said in the report).
"""
import os
import statistics
import subprocess

MODES = ("shared", "off", "per_connection", "node", "node_off")
LABELS = {
    "shared": "wsbridge shared", "off": "wsbridge off", "per_connection": "wsbridge per_connection",
    "node": "Node deflate", "node_off": "Node no deflate",
}
# Which servers compress: a client's offer must be accepted by these, refused by the others.
COMPRESSING = {"shared", "per_connection", "node"}


def has_compression_key(ctx):
    """True when the wsbridge binary knows `compression = "shared"` (the core of issue #20)."""
    path = os.path.join(ctx.workdir, "compression-check.toml")
    with open(path, "w") as f:
        f.write('[[listeners]]\nport = 1\ncompression = "shared"\n')
    r = subprocess.run([ctx.wsbridge_binary, "--check-config", path], capture_output=True, text=True)
    return r.returncode == 0


def listener_lines(mode, new_keys, a):
    """The [[listeners]] lines of a wsbridge variant, or None when this binary cannot run it."""
    if not new_keys:
        return {"off": "permessage_deflate = false", "per_connection": "permessage_deflate = true"}.get(mode)
    lines = f'compression = "{mode}"'
    if mode == "shared":  # the defaults, written out so the report's config is explicit
        lines += (f"\ncompression_threshold = {a.compression_threshold}\ncompression_level = 1"
                  "\ncompression_window_bits = 15")
    return lines


def make_servers(ctx, h, log):
    a = ctx.args
    new_keys = has_compression_key(ctx)
    ctx.compression_keys = new_keys
    modes = [m for m in a.compression_servers.split(",") if m]
    if not new_keys:
        log('compression: this wsbridge has no `compression` key yet (issue #20 core): "off" and '
            '"per_connection" run with the legacy permessage_deflate = false|true, "shared" is replaced '
            'by "per_connection"')
        modes = list(dict.fromkeys("per_connection" if m == "shared" else m for m in modes))
    servers = []
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"--compression-servers: unknown {mode!r} (one of {', '.join(MODES)})")
        if mode.startswith("node"):
            s = h.NodeBridge(ctx, name=mode, label=LABELS[mode], deflate=mode == "node")
        else:
            lines = listener_lines(mode, new_keys, a)
            if lines is None:
                continue
            s = h.Wsbridge(ctx, name=mode, label=LABELS[mode], listener=lines)
        s.compresses = mode in COMPRESSING
        servers.append(s)
    return servers


def check_negotiation(server, figures, expected, problems, what):
    """The offer must be accepted by the compressing servers on every connection, and refused by the
    others; shared must answer server_no_context_takeover (its frames are shared)."""
    got = figures.get("deflate_conns")
    want = expected if server.compresses else 0
    if got != want:
        problems.append(f"{what} {server.name}: permessage-deflate negotiated on {got} connections, expected {want}")
    if server.name == "shared" and figures.get("deflate_no_context") != got:
        problems.append(f"{what} {server.name}: server_no_context_takeover on "
                        f"{figures.get('deflate_no_context')} of {got} connections")
    return figures


def run(ctx, h, each_round, results, problems, log):
    """Runs the three measurements; results["compression-max"|"-rate"|"-idle"] hold the rows."""
    a = ctx.args
    servers = make_servers(ctx, h, log)
    ctx.compression_servers = servers
    if not servers:
        return None
    extra = ["--deflate", "--telemetry"]
    payload = a.compression_payload
    # Every client inflates every message it gets, as a browser would, at about 3 us of zlib each
    # for our payload: on this 2-core machine the load generator inflating for 1,000 clients is the
    # limit before wsbridge shared is. So the fan-outs inflate each distinct compressed message
    # once per process when the server promised server_no_context_takeover (--inflate-memo: same
    # bytes, same text; every payload is still checked), and one more closed-loop run of "shared"
    # has every client inflate everything, for the record.
    fan_extra = extra + ["--procs", str(a.compression_procs)]
    memo = [] if a.compression_no_memo else ["--inflate-memo"]
    rounds = a.compression_rounds

    def fan(s, rate, what, memo=memo):
        return check_negotiation(s, h.fanout(ctx, s, rate, payload=payload, extra=fan_extra + memo),
                                 a.subscribers, problems, what)

    each_round("compression-max", lambda s: fan(s, 0, "compression-max"), servers, rounds)
    shared = [s for s in servers if s.name == "shared"]
    if memo and shared:
        each_round("compression-maxinflate", lambda s: fan(s, 0, "compression-maxinflate", memo=[]), shared,
                   rounds)
    rate = a.compression_half_rate
    if rate is None:
        source = next((n for n in ("node", "shared", "per_connection", "off") if any(s.name == n for s in servers)))
        maxima = [row[source]["delivered_per_s"] for row in results["compression-max"] if row.get(source)]
        rate = 0.5 * statistics.median(maxima) / a.subscribers if maxima else 30.0
        log(f"compression: rate at {rate:.1f} messages/s (half of {source}'s median max over "
            f"{a.subscribers} subscribers)")
    ctx.compression_rate = rate
    each_round("compression-rate", lambda s: fan(s, rate, "compression-rate"), servers, rounds)
    steps = a.compression_idle_steps
    idle_extra = extra + ["--payload", str(payload), "--messages", str(a.compression_messages),
                          "--publisher", f"mqtt://127.0.0.1:{ctx.mosquitto.port}"]
    each_round("compression-idle",
               lambda s: check_negotiation(s, h.idle(ctx, s, steps=steps, extra=idle_extra), max(steps),
                                           problems, "compression-idle"),
               servers, rounds)
    return rate


ROWS = [
    # (measurement, key, label, unit)
    ("max", "delivered_per_s", "fan-out max: delivered messages/s", "msg/s"),
    ("max", "cpu_us_per_msg", "fan-out max: server CPU per delivered message", "µs"),
    ("max", "cpu_util", "fan-out max: server CPU use (1.0 = one core)", "cores"),
    ("max", "p99_us", "fan-out max: latency p99 (queues full)", "µs"),
    ("max", "loadgen_cpu_util", "fan-out max: load generator CPU (it inflates what comes compressed)", "cores"),
    ("maxinflate", "delivered_per_s", "fan-out max, every client inflating every message: delivered messages/s",
     "msg/s"),
    ("maxinflate", "cpu_us_per_msg", "… server CPU per delivered message", "µs"),
    ("maxinflate", "loadgen_cpu_util", "… load generator CPU", "cores"),
    ("rate", "cpu_us_per_msg", "fan-out at ½ rate: server CPU per delivered message", "µs"),
    ("rate", "p50_us", "fan-out at ½ rate: latency p50", "µs"),
    ("rate", "p99_us", "fan-out at ½ rate: latency p99", "µs"),
    ("rate", "p999_us", "fan-out at ½ rate: latency p99.9", "µs"),
    ("idle", "rss_per_conn", "after messages, idle: RSS per connection (slope)", "B"),
    ("idle", "pss_per_conn", "after messages, idle: PSS per connection (slope)", "B"),
    ("max", "wire_ratio", "compression ratio on the wire (inflated / compressed bytes)", "×"),
    ("max", "compressed_share", "share of messages received compressed", ""),
    ("max", "deflate_conns", "connections with permessage-deflate negotiated", ""),
    ("max", "errors", "fan-out max: connection errors (incl. corrupt payloads)", ""),
    ("max", "missing", "fan-out max: missing messages", ""),
    ("rate", "errors", "fan-out at ½ rate: connection errors", ""),
    ("rate", "missing", "fan-out at ½ rate: missing messages", ""),
    ("idle", "errors", "idle: connection errors (incl. messages not received)", ""),
]


def per_round(results, measurement, name, key):
    return [(row.get(name) or {}).get(key) for row in results.get(f"compression-{measurement}", [])]


def render(ctx, results, h):
    """The compression table and the issue #20.5 targets; returns (markdown, verdicts)."""
    servers = getattr(ctx, "compression_servers", [])
    names = [s.name for s in servers]
    if not names or "compression-max" not in results:
        return "", []
    head = "| figure | " + " | ".join(s.label for s in servers) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    for m, key, label, unit in ROWS:
        vals = {n: per_round(results, m, n, key) for n in names}
        if all(v is None for vs in vals.values() for v in vs):
            continue
        lines.append(f"| {label}{' (' + unit + ')' if unit else ''} | "
                     + " | ".join(h.cell(vals[n]) for n in names) + " |")
    subject = "shared" if "shared" in names else ("per_connection" if "per_connection" in names else None)
    verdicts = []
    tl = []
    if subject:
        tl += ["", f"Targets (issue #20.5) for wsbridge {subject}"
               + ("" if subject == "shared" else " (shared is not in this binary yet: the figures before the change)")
               + "; ratios are per round, median (min–max):", "",
               "| target | measured | met |", "|---|---|---|"]

        def ratio_target(label, a_vals, b_vals, limit, higher):
            text, med = h.ratio_cell(a_vals, b_vals)
            ok = None if med is None else (med >= limit if higher else med <= limit)
            met = "n/a" if ok is None else ("yes" if ok else "**no**")
            tl.append(f"| {label} {'≥' if higher else '≤'} {limit:g}× | {text} | {met} |")
            verdicts.append((label, f"{'≥' if higher else '≤'} {limit:g}×", met, med))

        rss = per_round(results, "idle", subject, "rss_per_conn")
        med = h.summary(rss)[0]
        if med is not None:
            met = "yes" if med <= 4096 else "**no**"
            tl.append(f"| idle RSS per compressed connection ≤ 4096 B | {h.cell(rss)} B | {met} |")
            verdicts.append(("compression: idle RSS per connection", "≤ 4096 B", met, med))
        if "node" in names:
            ratio_target("idle RSS per connection, wsbridge/Node", rss,
                         per_round(results, "idle", "node", "rss_per_conn"), 0.1, False)
        if "off" in names:
            ratio_target("fan-out max, compressed/own uncompressed", per_round(results, "max", subject, "delivered_per_s"),
                         per_round(results, "max", "off", "delivered_per_s"), 0.8, True)
        if "node" in names:
            ratio_target("fan-out max, wsbridge/Node (both compressed)",
                         per_round(results, "max", subject, "delivered_per_s"),
                         per_round(results, "max", "node", "delivered_per_s"), 5.0, True)
            for m, what in (("rate", "at ½ rate"), ("max", "closed loop")):
                ratio_target(f"server CPU per delivered message {what}, wsbridge/Node (both compressed)",
                             per_round(results, m, subject, "cpu_us_per_msg"),
                             per_round(results, m, "node", "cpu_us_per_msg"), 0.1, False)
        if {"off", "node", "node_off"} <= set(names):
            # What compression itself costs per delivered message: compressed minus uncompressed,
            # each server against itself in the same round.
            def extra_cpu(m, on, off):
                return [None if x is None or y is None else x - y
                        for x, y in zip(per_round(results, m, on, "cpu_us_per_msg"),
                                        per_round(results, m, off, "cpu_us_per_msg"))]
            for m, what in (("rate", "at ½ rate"), ("max", "closed loop")):
                ratio_target(f"compression's own CPU per delivered message {what} (compressed − uncompressed), "
                             "wsbridge/Node", extra_cpu(m, subject, "off"), extra_cpu(m, "node", "node_off"),
                             0.1, False)
    return "\n".join(lines + tl), verdicts
