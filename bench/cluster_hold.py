"""bench/cluster.py's hold part (issue #19.6): --cluster-connections held over --cluster-instances
wsbridge processes past wsbridge's ping interval; the time to open, RSS, open files, errors."""
import time

from cluster_procs import Loadgen, children, make_instance_class, meminfo, open_files, split


def hold(ctx):
    h, a = ctx.h, ctx.args
    Instance = make_instance_class(h)
    ids = [f"node-{chr(ord('a') + i)}" for i in range(a.cluster_instances)]
    instances = [Instance(ctx, i, a.cluster_threads) for i in ids]
    shares = split(a.cluster_connections, len(instances))
    lgs = []
    out = {"target": a.cluster_connections, "instances": {}, "problems": []}
    try:
        for s in instances:
            s.start()
        time.sleep(0.5)
        base = {s.name: h.proc_memory(s.proc.pid) for s in instances}
        kernel0 = meminfo()
        info = {s.name: s.instance_info() for s in instances}
        mqtt = f"mqtt://127.0.0.1:{ctx.mosquitto.port}"
        t0 = time.monotonic()
        for s, n in zip(instances, shares):
            procs = max(a.cluster_procs, (n + 17999) // 18000)  # each process stays under 20,000 files
            argv = ["idle", "--url", s.url("/mqtt"), "--steps", f"{n},{n}", "--topic", "bench/cluster",
                    "--messages", "1", "--publisher", mqtt, "--procs", str(procs),
                    "--source-ips", str(a.cluster_source_ips), "--concurrency", str(a.cluster_concurrency),
                    "--connect-timeout", "120", "--payload", "64"]
            lgs.append(Loadgen(ctx, s.name, argv, timeout=a.cluster_hold + 600))
        opened = {}
        for s, lg in zip(instances, lgs):
            ev = lg.next_event()
            opened[s.name] = (ev, time.monotonic() - t0)
            ctx.log(f"hold: {s.name}: {ev['ready']:,} of {ev['target']:,} open and subscribed, errors "
                    f"{ev['errors']}, {opened[s.name][1]:.1f} s")
        open_seconds = time.monotonic() - t0
        time.sleep(1.0)
        health1 = {s.name: s.healthz() for s in instances}
        mem1 = {s.name: h.proc_memory(s.proc.pid) for s in instances}
        kernel1 = meminfo()
        files_srv = {s.name: open_files(s.proc.pid) for s in instances}
        files_lg = {lg.name: [open_files(p) for p in children(lg.p.pid)] for lg in lgs}
        ctx.log(f"hold: all open in {open_seconds:.1f} s; /healthz connections "
                + ", ".join(f"{k} {v.get('connections')}" for k, v in health1.items())
                + f"; holding {a.cluster_hold:g} s")
        time.sleep(a.cluster_hold)
        for lg in lgs:
            lg.go()  # step 2: every connection must receive one more message
        held = {}
        for s, lg in zip(instances, lgs):
            held[s.name] = lg.next_event()
        health2 = {s.name: s.healthz() for s in instances}
        mem2 = {s.name: h.proc_memory(s.proc.pid) for s in instances}
        for lg in lgs:
            lg.go()
        results = {}
        for s, lg in zip(instances, lgs):
            results[s.name] = lg.next_event()
        alive = {s.name: s.proc.alive() for s in instances}
        for lg in lgs:
            code = lg.finish()
            if code != 0:
                out["problems"].append(f"loadgen {lg.name} exit status {code}: {lg.stderr()[-300:]}")
        lgs = []
        for s, n in zip(instances, shares):
            ev1, secs = opened[s.name]
            r = results[s.name]
            conns = health1[s.name].get("connections")
            out["instances"][s.name] = {
                "target": n, "open_seconds": secs,
                "ready_after_open": ev1["ready"], "ready_after_hold": held[s.name]["ready"],
                "open_after_hold": held[s.name]["open"],
                "healthz_after_open": conns, "healthz_after_hold": health2[s.name].get("connections"),
                "healthz_status": health2[s.name].get("status"),
                "errors": r["errors"], "messages_in": r["messages_in"],
                "rss_base": base[s.name]["rss"], "rss_open": mem1[s.name]["rss"], "rss_held": mem2[s.name]["rss"],
                "pss_open": mem1[s.name]["pss"],
                "rss_per_conn": (mem1[s.name]["rss"] - base[s.name]["rss"]) / conns if conns else None,
                "open_files": files_srv[s.name], "loadgen_open_files": files_lg[s.name],
                "alive": alive[s.name], "instance_info": info[s.name],
            }
    finally:
        for lg in lgs:
            lg.kill()
        codes = {}
        for s in instances:
            codes[s.name] = s.stop()
        out["exit_codes"] = codes
    inst = out["instances"]
    # Kernel memory for the sockets of both ends (the load generators' and the instances': all on
    # this machine), which no process's RSS shows: slab growth per connection.
    out["kernel"] = {
        "slab_growth": kernel1["Slab"] - kernel0["Slab"],
        "slab_per_conn": (kernel1["Slab"] - kernel0["Slab"]) / a.cluster_connections,
        "used_growth": (kernel0["MemAvailable"] - kernel1["MemAvailable"]),
        "tcp_before": kernel0.get("tcp"), "tcp_with": kernel1.get("tcp"),
    }
    out["open_seconds"] = open_seconds
    out["healthz_total_after_open"] = sum(v["healthz_after_open"] or 0 for v in inst.values())
    out["healthz_total_after_hold"] = sum(v["healthz_after_hold"] or 0 for v in inst.values())
    out["ready_after_hold"] = sum(v["ready_after_hold"] for v in inst.values())
    out["errors"] = sum(v["errors"]["total"] for v in inst.values()) + sum(
        v["target"] - v["ready_after_hold"] for v in inst.values())
    out["rss_total_open"] = sum(v["rss_open"] for v in inst.values())
    out["rss_total_growth"] = sum(v["rss_open"] - v["rss_base"] for v in inst.values())
    out["rss_per_conn"] = out["rss_total_growth"] / max(out["healthz_total_after_open"], 1)
    out["max_open_files"] = max([v["open_files"] or 0 for v in inst.values()]
                                + [x or 0 for v in inst.values() for x in v["loadgen_open_files"]])
    out["ok"] = (out["errors"] == 0 and out["healthz_total_after_open"] == a.cluster_connections
                 and out["healthz_total_after_hold"] == a.cluster_connections
                 and all(v["alive"] for v in inst.values())
                 and all(c in (0, None) for c in codes.values()))
    return out
