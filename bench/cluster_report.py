"""The report of bench/cluster.py (issue #19.6): the hold and fan-out tables (also bench/run's), the
smoke checks and the machine's description for the standalone report's header."""
import json
import os
import statistics
import subprocess


def mib(b):
    return f"{b / 1048576:,.1f}"


def render(ctx, results):
    a = ctx.args
    out = []
    hd = results.get("cluster-hold")
    if hd and hd.get("instances"):
        n = len(hd["instances"])
        out.append(f"Cluster hold (bench/cluster.py): {hd['target']:,} WebSocket connections over {n} wsbridge "
                   f"instances ([server] threads = {a.cluster_threads} each"
                   f"{', with a [cluster] table' if ctx.cluster_table else ', no [cluster] table in this build'}), "
                   f"each connection on the JSON MQTT route and subscribed to one topic, one message "
                   f"received after opening and one more after a {a.cluster_hold:g} s hold.")
        out.append("")
        out.append("| instance | connections (/healthz) after opening / after the hold | ready after the hold | "
                   "open in (s) | RSS before → with them (MiB) | RSS per connection (B) | open files | "
                   "load generator processes: open files | errors |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for name, v in hd["instances"].items():
            errs = {k: x for k, x in v["errors"].items() if x and k != "total"}
            out.append(f"| {name} | {v['healthz_after_open']:,} / {v['healthz_after_hold']:,} | "
                       f"{v['ready_after_hold']:,} of {v['target']:,} | {v['open_seconds']:.1f} | "
                       f"{mib(v['rss_base'])} → {mib(v['rss_open'])} | "
                       f"{v['rss_per_conn']:,.0f} | {v['open_files']:,} | "
                       f"{', '.join(f'{x:,}' for x in v['loadgen_open_files'] if x)} | "
                       f"{v['errors']['total']}{' ' + json.dumps(errs) if errs else ''} |")
        out.append(f"| **all** | **{hd['healthz_total_after_open']:,} / {hd['healthz_total_after_hold']:,}** | "
                   f"{hd['ready_after_hold']:,} of {hd['target']:,} | {hd['open_seconds']:.1f} | "
                   f"{mib(hd['rss_total_open'])} in total | {hd['rss_per_conn']:,.0f} | "
                   f"max {hd['max_open_files']:,} per process | | **{hd['errors']}** |")
        k = hd.get("kernel") or {}
        if k:
            out.append("")
            out.append(f"Kernel memory (not in any RSS) for both ends of the connections, all on this machine: slab "
                       f"+{mib(k['slab_growth'])} MiB, {k['slab_per_conn']:,.0f} B per connection (client and server "
                       f"socket together); MemAvailable {'−' if k['used_growth'] >= 0 else '+'}{mib(abs(k['used_growth']))} MiB for everything (instances, load "
                       f"generators, kernel). TCP sockets in use: {(k.get('tcp_before') or {}).get('inuse', 0):,} → "
                       f"{(k.get('tcp_with') or {}).get('inuse', 0):,}.")
        out.append("")
        out.append(f"Verdict: {'**met**' if hd['ok'] else '**NOT met**'} ({hd['target']:,} held with no error, "
                   f"every instance alive and exiting 0: {hd['exit_codes']}).")
    fo = results.get("cluster-fanout")
    if fo:
        if out:
            out.append("")
        out.append(f"Cluster fan-out (bench/cluster.py): {a.cluster_subscribers:,} subscribers on one MQTT topic, half in a "
                   f"closed-loop fanout load generator (publisher on mosquitto, window {a.cluster_window} per "
                   f"subscriber of its own), half in an idle one; `IxT` = I instances of [server] threads = T; "
                   f"with 2 instances each half is on its own instance. {a.cluster_duration:g} s of publishing, "
                   f"{a.cluster_warmup:g} s not measured, {a.cluster_payload}-byte payloads, {a.cluster_rounds} "
                   "round(s), a fresh set of instances each time. Deliveries/s: the sum of the instances' "
                   "`wsbridge_messages_sent_total` over the measured window; median (min–max).")
        out.append("")
        base = fo["configs"][0]
        out.append("| configuration | deliveries/s (all instances) | per instance | vs " + base +
                   " (per round) | sustained incl. catch-up | catch-up after publishing (s) | server CPU (cores) | "
                   "load generators (cores) | mosquitto (cores) | machine busy (cores) | missing | errors |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")

        def med(vals):
            vals = [v for v in vals if v is not None]
            if not vals:
                return "n/a"
            m = statistics.median(vals)
            return (f"{m:,.0f}" if m >= 100 else f"{m:.2f}") + (
                "" if len(vals) == 1 or min(vals) == max(vals) else
                f" ({min(vals):,.0f}–{max(vals):,.0f})" if m >= 100 else f" ({min(vals):.2f}–{max(vals):.2f})")

        for c in fo["configs"]:
            rs = fo["rounds"][c]
            ok = [r for r in rs if r]
            ratios = [r["delivered_per_s"] / b["delivered_per_s"] for r, b in zip(rs, fo["rounds"][base])
                      if r and b and b["delivered_per_s"]]
            per_inst = {}
            for r in ok:
                for k, v in r["per_instance_per_s"].items():
                    per_inst.setdefault(k, []).append(v)
            out.append(f"| {c} | {med([r['delivered_per_s'] for r in ok])} | "
                       + "; ".join(f"{k} {statistics.median(v):,.0f}" for k, v in per_inst.items()) + " | "
                       + (f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})" if ratios else "n/a")
                       + f" | {med([r['sustained_per_s'] for r in ok])} | {med([r['catch_up_s'] for r in ok])} | "
                       f"{med([r['server_cores'] for r in ok])} | {med([r['loadgen_cores'] for r in ok])} | "
                       f"{med([r['mosquitto_cores'] for r in ok])} | {med([r['machine_cores'] for r in ok])} | "
                       f"{sum(r['missing'] for r in ok)} | {sum(r['errors'] for r in ok)}"
                       f"{'' if len(ok) == len(rs) else f' + {len(rs) - len(ok)} failed run(s)'} |")
    return "\n".join(out)


def smoke_checks(results):
    checks = []
    hd = results.get("cluster-hold")
    if hd is not None:
        checks.append(("cluster hold", bool(hd.get("ok")), {k: hd.get(k) for k in ("errors", "healthz_total_after_hold")}))
    fo = results.get("cluster-fanout")
    if fo is not None:
        for c, rs in fo["rounds"].items():
            for i, r in enumerate(rs):
                ok = r is not None and r["delivered_per_s"] > 0 and r["errors"] == 0 and r["missing"] == 0
                checks.append((f"cluster fanout {c} round {i + 1}", ok,
                               r and {k: r[k] for k in ("delivered_per_s", "errors", "missing")}))
    return checks


def machine(ctx):
    import platform
    import resource
    info = {"cores": os.cpu_count(), "kernel": platform.release(), "cpu": "?",
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        info["memory_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    info["mosquitto"] = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "mosquitto"],
                                       capture_output=True, text=True).stdout.strip() or "?"
    # The tree the measured binary was built from (its build directory's checkout), not this script's.
    src = os.path.dirname(os.path.realpath(ctx.wsbridge_binary))
    info["git"] = subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                                 capture_output=True, text=True).stdout.strip() or "?"
    info["wsbridge_version"] = subprocess.run([ctx.wsbridge_binary, "--version"], capture_output=True,
                                              text=True).stdout.strip()
    return info


