"""The report of bench/run's proxy phase (bench/proxy.py): its table, the issue #18.4 targets
against nginx (HAProxy's ratios beside them for reference), the header line and the smoke
checks."""

ROWS = [
    # (phase, key, label, unit)
    ("proxy-http", "per_s", "HTTP keep-alive: requests/s", "req/s"),
    ("proxy-http", "p50_us", "HTTP keep-alive: latency p50", "µs"),
    ("proxy-http", "p99_us", "HTTP keep-alive: latency p99", "µs"),
    ("proxy-http", "cpu_us_per", "HTTP keep-alive: proxy CPU per request", "µs"),
    ("proxy-http", "cpu_util", "HTTP keep-alive: proxy CPU use (1.0 = one core)", "cores"),
    ("proxy-http", "backend_util", "HTTP keep-alive: backend CPU use", "cores"),
    ("proxy-http", "loadgen_util", "HTTP keep-alive: load generator CPU use", "cores"),
    ("proxy-http", "other_load", "HTTP keep-alive: CPU of other processes", "cores"),
    ("proxy-http", "reconnects", "HTTP keep-alive: client connections the proxy closed", ""),
    ("proxy-http", "errors", "HTTP keep-alive: errors (connections, non-2xx, unanswered)", ""),
    ("proxy-echo", "per_s", "WebSocket echo: messages/s (round trips)", "msg/s"),
    ("proxy-echo", "p50_us", "WebSocket echo: round trip p50", "µs"),
    ("proxy-echo", "p99_us", "WebSocket echo: round trip p99", "µs"),
    ("proxy-echo", "p999_us", "WebSocket echo: round trip p99.9", "µs"),
    ("proxy-echo", "cpu_us_per", "WebSocket echo: proxy CPU per round trip", "µs"),
    ("proxy-echo", "cpu_util", "WebSocket echo: proxy CPU use", "cores"),
    ("proxy-echo", "backend_util", "WebSocket echo: echo backend CPU use", "cores"),
    ("proxy-echo", "loadgen_util", "WebSocket echo: load generator CPU use", "cores"),
    ("proxy-echo", "other_load", "WebSocket echo: CPU of other processes", "cores"),
    ("proxy-echo", "errors", "WebSocket echo: errors (connections, corrupt, unanswered)", ""),
    ("proxy-echo-light", "per_s", "WebSocket echo, light load: messages/s", "msg/s"),
    ("proxy-echo-light", "p50_us", "WebSocket echo, light load: round trip p50", "µs"),
    ("proxy-echo-light", "p99_us", "WebSocket echo, light load: round trip p99", "µs"),
    ("proxy-echo-light", "cpu_us_per", "WebSocket echo, light load: proxy CPU per round trip", "µs"),
    ("proxy-echo-light", "errors", "WebSocket echo, light load: errors", ""),
    ("proxy-echo-busy", "per_s", "WebSocket echo among idle WebSockets: messages/s", "msg/s"),
    ("proxy-echo-busy", "p50_us", "WebSocket echo among idle WebSockets: round trip p50", "µs"),
    ("proxy-echo-busy", "p99_us", "WebSocket echo among idle WebSockets: round trip p99", "µs"),
    ("proxy-echo-busy", "cpu_us_per", "WebSocket echo among idle WebSockets: proxy CPU per round trip", "µs"),
    ("proxy-echo-busy", "backend_util", "WebSocket echo among idle WebSockets: echo backend CPU use", "cores"),
    ("proxy-echo-busy", "idle_open", "WebSocket echo among idle WebSockets: idle WebSockets open", ""),
    ("proxy-echo-busy", "errors", "WebSocket echo among idle WebSockets: errors", ""),
]

TARGETS = [
    # (phase, key, label, limit or None, higher is better)
    ("proxy-http", "per_s", "HTTP requests/s on keep-alive connections", 0.8, True),
    ("proxy-echo", "per_s", "WebSocket pass-through messages/s", 1.0, True),
    ("proxy-idle", "pss_per_conn", "memory (PSS) per proxied WebSocket", 1.0, False),
    ("proxy-http", "cpu_us_per", "proxy CPU per HTTP request", None, False),
    ("proxy-echo", "cpu_us_per", "proxy CPU per WebSocket round trip", None, False),
    ("proxy-echo", "p99_us", "WebSocket round trip p99 (closed loop, loaded)", None, False),
    ("proxy-echo-light", "p99_us", "WebSocket round trip p99 (light load)", None, False),
    ("proxy-echo-busy", "per_s", "WebSocket messages/s among idle WebSockets", None, True),
    ("proxy-idle", "rss_per_conn", "memory (RSS) per proxied WebSocket", None, False),
]


def idle_rows(steps):
    rows = []
    for n in steps:
        rows += [("proxy-idle", f"pss_at_{n}", f"{n:,} idle WebSockets: proxy PSS delta / N", "B"),
                 ("proxy-idle", f"rss_at_{n}", f"{n:,} idle WebSockets: proxy RSS delta / N", "B"),
                 ("proxy-idle", f"ready_at_{n}", f"{n:,} idle WebSockets: open and echoed", "")]
    rows += [("proxy-idle", "pss_slope", "idle WebSockets: PSS slope over the steps", "B"),
             ("proxy-idle", "rss_slope", "idle WebSockets: RSS slope over the steps", "B"),
             ("proxy-idle", "pss_base", "idle: proxy PSS before the first WebSocket", "B"),
             ("proxy-idle", "procs", "idle: proxy processes", ""),
             ("proxy-idle", "errors", "idle: errors", "")]
    return rows


def per_round(results, phase, name, key):
    return [(row.get(name) or {}).get(key) for row in results.get(phase, [])]


def render(ctx, results, h):
    """The proxy table and the issue #18.4 targets; returns (markdown, verdicts)."""
    servers = getattr(ctx, "proxy_servers_run", [])
    names = [s.name for s in servers]
    if not names or "proxy-http" not in results:
        return "", []
    head = "| figure | " + " | ".join(s.label for s in servers) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    for phase, key, label, unit in ROWS + idle_rows(ctx.args.proxy_idle_steps):
        vals = {n: per_round(results, phase, n, key) for n in names}
        if all(v is None for vs in vals.values() for v in vs):
            continue
        lines.append(f"| {label}{' (' + unit + ')' if unit else ''} | "
                     + " | ".join(h.cell(vals[n]) for n in names) + " |")
    verdicts = []
    if "wsbridge_proxy" in names and "nginx" in names:
        ha = "haproxy" in names
        lines += ["", "Targets (issue #18.4, against nginx); ratios are per round, median (min–max):", "",
                  "| figure | wsbridge/nginx | target | met |" + (" wsbridge/HAProxy |" if ha else ""),
                  "|---|---|---|---|" + ("---|" if ha else "")]
        for phase, key, label, limit, higher in TARGETS:
            if phase not in results:
                continue
            text, med = h.ratio_cell(per_round(results, phase, "wsbridge_proxy", key),
                                     per_round(results, phase, "nginx", key))
            tgt, met = "", ""
            if limit is not None:
                sign = "≥" if higher else "≤"
                tgt = f"{sign} {limit:g}×"
                ok = None if med is None else (med >= limit if higher else med <= limit)
                met = "n/a" if ok is None else ("yes" if ok else "**no**")
                verdicts.append((f"{label}, wsbridge/nginx", tgt, met, med))
            row = f"| {label} | {text} | {tgt} | {met} |"
            if ha:
                row += " " + h.ratio_cell(per_round(results, phase, "wsbridge_proxy", key),
                                          per_round(results, phase, "haproxy", key))[0] + " |"
            lines.append(row)
    for note in getattr(ctx, "proxy_note", []):
        lines += ["", f"Note: {note}."]
    return "\n".join(lines), verdicts


def header(ctx):
    a = ctx.args
    return (f"HTTP reverse proxy and WebSocket pass-through (bench/proxy.py): each proxy with "
            f"{a.proxy_threads} threads or worker processes on 127.0.0.1, the same backends (the "
            f"load generator's keep-alive httpd answering {a.proxy_http_body} bytes of JSON, one "
            f"thread; a wsbridge echo route, {a.proxy_backend_threads} thread(s)); "
            f"{a.proxy_rounds} rounds, each measurement on a fresh proxy; HTTP: "
            f"{a.proxy_http_connections} keep-alive connections, one GET in flight each; echo: "
            f"{a.proxy_ws_connections} WebSockets, {a.proxy_ws_window} message(s) of "
            f"{a.proxy_ws_payload} bytes in flight each"
            + (f" (light load: {a.proxy_ws_light_connections} WebSockets, one message each)"
               if a.proxy_ws_light_connections else "")
            + (f", and among {a.proxy_busy_idle:,} more idle WebSockets held open through the proxy"
               if a.proxy_busy_idle else "")
            + f"; {a.proxy_duration:g} s per run "
            f"({a.proxy_warmup:g} s warm-up not measured), {a.proxy_procs} load generator "
            f"process(es); idle: steps {','.join(map(str, a.proxy_idle_steps))} WebSockets, "
            f"memory summed over each proxy's process tree. \"direct\" is the load generator on the "
            f"backends without a proxy.")


def smoke_checks(results):
    """(what, passed, detail) for bench/run --smoke: every run moved traffic without an error."""
    checks = []
    for phase in ("proxy-http", "proxy-echo", "proxy-echo-light", "proxy-echo-busy"):
        for r, row in enumerate(results.get(phase, [])):
            for name, v in row.items():
                ok = v is not None and v["per_s"] > 0 and v["errors"] == 0
                checks.append((f"{phase} round {r + 1} {name}", ok,
                               v and {k: v[k] for k in ("per_s", "errors", "reconnects")}))
    for r, row in enumerate(results.get("proxy-idle", [])):
        for name, v in row.items():
            ok = v is not None and v["errors"] == 0 and v.get("pss_per_conn") is not None
            checks.append((f"proxy-idle round {r + 1} {name}", ok, v and {"errors": v["errors"]}))
    return checks
