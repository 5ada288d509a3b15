"""bench/cluster.py's fanout part (issue #19.6): the aggregate fan-out throughput of two wsbridge
instances against one, the configurations of --cluster-configs alternating for --cluster-rounds."""
import time

from cluster_procs import Loadgen, errors_of, make_instance_class, split, tree_cpu


def parse_configs(text):
    out = []
    for c in [c for c in text.split(",") if c]:
        i, _, t = c.partition("x")
        i, t = int(i), int(t or 1)
        if i not in (1, 2):
            raise SystemExit(f"--cluster-configs: {c}: 1 or 2 instances")
        out.append((c, i, t))
    return out


def fanout_once(ctx, n_instances, threads):
    h, a = ctx.h, ctx.args
    Instance = make_instance_class(h)
    instances = [Instance(ctx, f"node-{chr(ord('a') + i)}", threads) for i in range(n_instances)]
    half_x, half_y = split(a.cluster_subscribers, 2)
    mqtt = f"mqtt://127.0.0.1:{ctx.mosquitto.port}"
    lgs = []
    try:
        for s in instances:
            s.start()
        x_srv, y_srv = instances[0], instances[-1]
        y = Loadgen(ctx, "idle", ["idle", "--url", y_srv.url("/mqtt"), "--connections", str(half_y),
                                  "--topic", "bench/fanout", "--payload", str(a.cluster_payload)], timeout=300)
        lgs.append(y)
        ey = y.next_event(120)
        x = Loadgen(ctx, "fanout", ["fanout", "--url", x_srv.url("/mqtt"), "--subscribers", str(half_x),
                                    "--topic", "bench/fanout", "--publisher", mqtt, "--rate", "0",
                                    "--window", str(a.cluster_window), "--duration", str(a.cluster_duration),
                                    "--warmup", str(a.cluster_warmup), "--payload", str(a.cluster_payload),
                                    "--settle", "0.3", "--drain-quiet", "1"], timeout=300)
        lgs.append(x)
        ex = x.next_event(120)
        sent_before = {s.name: s.sent_total() for s in instances}

        def sample():
            return {"t": time.monotonic(),
                    "sent": {s.name: s.sent_total() for s in instances},
                    "cpu": {s.name: h.proc_cpu_seconds(s.proc.pid) for s in instances},
                    "mosq": h.proc_cpu_seconds(ctx.mosquitto.proc.pid),
                    "lg": tree_cpu(h, x.p.pid) + tree_cpu(h, y.p.pid),
                    "machine": h.machine_busy_seconds()}

        t_go = time.monotonic()
        x.go()
        t_start = t_go + 0.3 + a.cluster_warmup
        t_end = t_go + 0.3 + a.cluster_duration
        time.sleep(max(0.0, t_start - time.monotonic()))
        s0 = sample()
        time.sleep(max(0.0, t_end - time.monotonic()))
        s1 = sample()
        rx = x.next_event(120)
        # Until every instance has written everything (or nothing moved for 1 s): the time the
        # instances needed after the publisher stopped.
        last, last_change = sum(s1["sent"].values()), time.monotonic()
        while time.monotonic() - last_change < 1.0:
            time.sleep(0.05)
            now = sum(s.sent_total() for s in instances)
            if now != last:
                last, last_change = now, time.monotonic()
        catch_up = max(0.0, last_change - t_end)
        y.go()
        ry = y.next_event(60)
        for lg in lgs:
            lg.finish()
        lgs = []
        alive = all(s.proc.alive() for s in instances)
    finally:
        for lg in lgs:
            lg.kill()
        for s in instances:
            s.stop()
    wall = s1["t"] - s0["t"]
    sent = {k: s1["sent"][k] - s0["sent"][k] for k in s1["sent"]}
    published = rx["published"]
    # The idle subscribers' frames: a status and an ack each, then the messages.
    y_deliveries = ry["messages_in"] - 2 * ry["ready"]
    total_after = last
    delivered_total = total_after - sum(sent_before.values())
    return {
        "delivered_per_s": sum(sent.values()) / wall,
        "per_instance_per_s": {k: v / wall for k, v in sent.items()},
        "published": published, "publish_rate": rx["publish_rate"],
        "loadgen_x_delivered_per_s": rx["delivered_per_second"],
        "catch_up_s": catch_up,
        "sustained_per_s": delivered_total / max(rx["publish_seconds"] + catch_up, 1e-9),
        "missing": rx["missing"] + max(0, published * ry["ready"] - y_deliveries),
        "x_missing": rx["missing"], "x_duplicates": rx["duplicates"],
        "y_deliveries": y_deliveries, "y_expected": published * ry["ready"],
        "errors": errors_of(rx) + errors_of(ry) + (half_x - rx["ready"]) + (half_y - ry["ready"])
        + (0 if alive else 1),
        "cpu_cores": {k: (s1["cpu"][k] - s0["cpu"][k]) / wall for k in s1["cpu"]},
        "server_cores": sum(s1["cpu"][k] - s0["cpu"][k] for k in s1["cpu"]) / wall,
        "mosquitto_cores": (s1["mosq"] - s0["mosq"]) / wall,
        "loadgen_cores": (s1["lg"] - s0["lg"]) / wall,
        "machine_cores": (s1["machine"] - s0["machine"]) / wall,
        "p99_us": rx["latency_us"]["p99"],
        "ready_events": {"x": ex.get("ready"), "y": ey.get("ready")},
    }


def fanout(ctx):
    a = ctx.args
    configs = parse_configs(a.cluster_configs)
    rounds = {c: [] for c, _, _ in configs}
    problems = []
    for r in range(a.cluster_rounds):
        for c, i, t in configs:
            try:
                v = fanout_once(ctx, i, t)
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                problems.append(f"fanout {c} round {r + 1}: {e}")
                ctx.log(problems[-1])
                v = None
            rounds[c].append(v)
            if v:
                ctx.log(f"fanout {c} round {r + 1}/{a.cluster_rounds}: {v['delivered_per_s']:,.0f} deliveries/s "
                        f"(" + ", ".join(f"{k} {x:,.0f}" for k, x in v["per_instance_per_s"].items())
                        + f"), sustained {v['sustained_per_s']:,.0f}, catch-up {v['catch_up_s']:.2f} s, "
                        f"missing {v['missing']}, errors {v['errors']}, server {v['server_cores']:.2f} cores, "
                        f"loadgen {v['loadgen_cores']:.2f}, mosquitto {v['mosquitto_cores']:.2f}, "
                        f"machine {v['machine_cores']:.2f}")
    return {"rounds": rounds, "problems": problems, "configs": [c for c, _, _ in configs]}
