"""The report of bench/run's mqtt-passthrough phase (bench/mqtt_passthrough.py): its table, the
issue #17.5 targets against websockify, the header line and the smoke checks."""

ROWS = [
    # (phase, key, label, unit)
    ("mqtt-max", "delivered_per_s", "fan-out max: delivered messages/s at the clients", "msg/s"),
    ("mqtt-max", "window", "fan-out max: the best window (messages in flight per subscriber)", ""),
    ("mqtt-max", "cpu_us_per_msg", "fan-out max: bridge CPU per delivered message", "µs"),
    ("mqtt-max", "cpu_util", "fan-out max: bridge CPU use (1.0 = one core)", "cores"),
    ("mqtt-max", "mosquitto_util", "fan-out max: mosquitto CPU use", "cores"),
    ("mqtt-max", "loadgen_cpu_util", "fan-out max: load generator CPU use", "cores"),
    ("mqtt-max", "other_load", "fan-out max: CPU of other processes", "cores"),
    ("mqtt-max", "p99_us", "fan-out max: latency p99 (closed loop, queues full)", "µs"),
    ("mqtt-max", "missing", "fan-out max: missing messages", ""),
    ("mqtt-max", "errors", "fan-out max: errors", ""),
    ("mqtt-rate", "delivered_per_s", "fan-out at the moderate rate: delivered messages/s", "msg/s"),
    ("mqtt-rate", "p50_us", "fan-out at the moderate rate: latency p50", "µs"),
    ("mqtt-rate", "p99_us", "fan-out at the moderate rate: latency p99", "µs"),
    ("mqtt-rate", "cpu_us_per_msg", "fan-out at the moderate rate: bridge CPU per delivered message", "µs"),
    ("mqtt-rate", "missing", "fan-out at the moderate rate: missing messages", ""),
    ("mqtt-rate", "errors", "fan-out at the moderate rate: errors", ""),
    ("mqtt-pub0", "messages_per_s", "publish QoS 0: messages/s at the TCP subscriber", "msg/s"),
    ("mqtt-pub0", "cpu_us_per_msg", "publish QoS 0: bridge CPU per message", "µs"),
    ("mqtt-pub0", "mosquitto_util", "publish QoS 0: mosquitto CPU use", "cores"),
    ("mqtt-pub0", "p99_us", "publish QoS 0: latency p99 (closed loop)", "µs"),
    ("mqtt-pub0", "missing", "publish QoS 0: missing messages", ""),
    ("mqtt-pub0", "errors", "publish QoS 0: errors", ""),
    ("mqtt-pub1", "messages_per_s", "publish QoS 1: messages/s at the TCP subscriber", "msg/s"),
    ("mqtt-pub1", "cpu_us_per_msg", "publish QoS 1: bridge CPU per message (PUBACK included)", "µs"),
    ("mqtt-pub1", "mosquitto_util", "publish QoS 1: mosquitto CPU use", "cores"),
    ("mqtt-pub1", "p99_us", "publish QoS 1: latency p99 (closed loop)", "µs"),
    ("mqtt-pub1", "missing", "publish QoS 1: missing messages", ""),
    ("mqtt-pub1", "errors", "publish QoS 1: errors (unacknowledged PUBLISH included)", ""),
]

TARGETS = [
    # (phase, key, label, limit, higher is better)
    ("mqtt-max", "delivered_per_s", "fan-out throughput, wsbridge/websockify", 2.0, True),
    ("mqtt-pub0", "messages_per_s", "publish QoS 0 throughput, wsbridge/websockify", 2.0, True),
    ("mqtt-pub1", "messages_per_s", "publish QoS 1 throughput, wsbridge/websockify", 2.0, True),
    ("mqtt-max", "cpu_us_per_msg", "CPU per delivered message (fan-out max), wsbridge/websockify", 0.5, False),
    ("mqtt-rate", "cpu_us_per_msg", "CPU per delivered message (moderate rate), wsbridge/websockify", 0.5, False),
    ("mqtt-pub0", "cpu_us_per_msg", "CPU per published message (QoS 0), wsbridge/websockify", 0.5, False),
    ("mqtt-pub1", "cpu_us_per_msg", "CPU per published message (QoS 1), wsbridge/websockify", 0.5, False),
]


def idle_rows(steps):
    """Per step: PSS and RSS delta / N over the process tree (n/a when not every connection of
    the step was up), the number of processes, the connections up."""
    rows, targets = [], []
    for n in steps:
        rows += [("mqtt-idle", f"pss_at_{n}", f"{n:,} idle MQTT clients: PSS delta / N, all processes", "B"),
                 ("mqtt-idle", f"rss_at_{n}", f"{n:,} idle MQTT clients: RSS delta / N (shared pages once per process)", "B"),
                 ("mqtt-idle", f"procs_at_{n}", f"{n:,} idle MQTT clients: bridge processes", ""),
                 ("mqtt-idle", f"ready_at_{n}", f"{n:,} idle MQTT clients: connected and subscribed", "")]
        targets.append(("mqtt-idle", f"pss_at_{n}", f"memory (PSS) per idle connection at {n:,}, wsbridge/websockify",
                        0.5, False))
    rows.append(("mqtt-idle", "errors", "idle: errors", ""))
    return rows, targets


def per_round(results, phase, name, key):
    return [(row.get(name) or {}).get(key) for row in results.get(phase, [])]


def render(ctx, results, h):
    """The pass-through table and the issue #17.5 targets; returns (markdown, verdicts)."""
    servers = getattr(ctx, "mqtt_servers_run", [])
    names = [s.name for s in servers]
    if not names or "mqtt-max" not in results:
        return "", []
    head = "| figure | " + " | ".join(s.label for s in servers) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    extra_rows, extra_targets = idle_rows(ctx.args.mqtt_idle_steps)
    for phase, key, label, unit in ROWS + extra_rows:
        vals = {n: per_round(results, phase, n, key) for n in names}
        if all(v is None for vs in vals.values() for v in vs):
            continue
        lines.append(f"| {label}{' (' + unit + ')' if unit else ''} | "
                     + " | ".join(h.cell(vals[n]) for n in names) + " |")
    verdicts = []
    if "wsbridge_pt" in names and "websockify" in names:
        lines += ["", "Targets (issue #17.5); ratios are per round, median (min–max):", "",
                  "| target | measured | met |", "|---|---|---|"]
        for phase, key, label, limit, higher in TARGETS + extra_targets:
            text, med = h.ratio_cell(per_round(results, phase, "wsbridge_pt", key),
                                     per_round(results, phase, "websockify", key))
            ok = None if med is None else (med >= limit if higher else med <= limit)
            met = "n/a" if ok is None else ("yes" if ok else "**no**")
            sign = "≥" if higher else "≤"
            lines.append(f"| {label} {sign} {limit:g}× | {text} | {met} |")
            verdicts.append((label, f"{sign} {limit:g}×", met, med))
    for note in getattr(ctx, "mqtt_note", []):
        lines += ["", f"Note: {note}."]
    return "\n".join(lines), verdicts


def header(ctx):
    a = ctx.args
    return (f"MQTT pass-through (bench/mqtt_passthrough.py): the load generator's MQTT 3.1.1 clients "
            f"(binary frames; subprotocol \"mqtt\" to wsbridge, none to websockify, which refuses it); "
            f"{a.mqtt_rounds} rounds; fan-out: {a.mqtt_subscribers} subscribers (QoS 0) on one topic, "
            f"{a.payload}-byte payloads published to mosquitto over TCP, {a.mqtt_duration:g} s "
            f"({a.warmup:g} s warm-up not measured), closed loop at the best of windows {','.join(map(str, a.mqtt_windows))} per subscriber, "
            f"moderate rate {getattr(ctx, 'mqtt_rate_used', 0):.1f} messages/s; publish: "
            f"{a.mqtt_publishers} clients, closed loop window {a.mqtt_publish_window} per client, "
            f"counted by one subscriber on mosquitto over TCP; idle: steps "
            f"{','.join(map(str, a.mqtt_idle_steps))} connections. CPU and memory are summed over "
            f"each bridge's process tree.")


def smoke_checks(results):
    """(what, passed, detail) for bench/run --smoke."""
    checks = []
    for phase in ("mqtt-max", "mqtt-rate", "mqtt-pub0", "mqtt-pub1"):
        for r, row in enumerate(results.get(phase, [])):
            for name, v in row.items():
                ok = v is not None and v["delivered_per_s"] > 0 and v["errors"] == 0 and v["missing"] == 0
                checks.append((f"{phase} round {r + 1} {name}", ok,
                               v and {k: v[k] for k in ("delivered_per_s", "errors", "missing")}))
    for r, row in enumerate(results.get("mqtt-idle", [])):
        for name, v in row.items():
            ok = v is not None and v["errors"] == 0 and all(v.get(k) is not None for k in v if k.startswith("pss_at_"))
            checks.append((f"mqtt-idle round {r + 1} {name}", ok, v and {"errors": v["errors"]}))
    return checks
