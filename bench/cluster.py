#!/usr/bin/python3
"""bench/cluster.py: several wsbridge instances on one machine, one broker (issue #19.6).

Standalone (`python3 bench/cluster.py`), or as the `cluster` phase of bench/run
(`bench/run --no-build --phases cluster`). It never builds: it measures the binaries in
--build-dir (wsbridge and bench/wsbridge-loadgen), copying wsbridge first so that a rebuild during
the run changes nothing. It starts its own mosquitto on a free loopback port.

Two parts (--cluster-parts):

  hold    --cluster-instances (3) wsbridge processes (`[server] instance_id` node-a, node-b, ...,
          each on its own loopback port, `[server] threads = --cluster-threads`, 1 by default)
          hold --cluster-connections (50,000) WebSocket connections together, more than one
          process may open (20,000 files here). Each connection is on the JSON MQTT route /mqtt
          and subscribed to one topic, the realistic idle client. One load generator per
          instance (`wsbridge-loadgen idle`, --cluster-procs processes each, bound to
          127.0.0.1..127.0.0.K with --cluster-source-ips K) opens its share; a connection counts
          once its subscription is acknowledged and one message published on the topic reached
          it. The connections are then held for --cluster-hold seconds (35: past wsbridge's 30 s
          ping interval), and every connection must receive one more message. Each instance's
          /healthz `connections` is read after the opening and after the hold. Reported: time to
          open, RSS per instance (and its growth per connection), open files per process, every
          error (must be 0).
  fanout  aggregate fan-out throughput of two instances against one: --cluster-subscribers
          subscribers on one MQTT topic, half of them in a `fanout` load generator (which also
          publishes, closed loop, --cluster-window messages in flight per subscriber of its own)
          and half in an `idle` one. For each configuration of --cluster-configs, `IxT` = I
          instances of T threads: with 1 instance both halves are on it; with 2 each half is on
          its own instance. Delivered messages/s are the sum over the instances of
          `wsbridge_messages_sent_total` (each instance's /metrics) over the measured window;
          the load generators check every payload and count what is missing. A fresh set of
          instances for each measurement; the configurations alternate, --cluster-rounds rounds.

  python3 bench/cluster.py                              # both parts, about 4 minutes on 2 cores
  python3 bench/cluster.py --cluster-parts hold --json /tmp/cluster.json --markdown /tmp/cluster.md
  python3 bench/cluster.py --smoke                      # a few hundred connections, ~30 s

Only /usr/bin/python3 and the standard library. Traffic goes to 127.0.0.x only.
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import queue
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load_bench_run():
    """bench/run as a module (it has no .py suffix): its processes, mosquitto and /proc readers."""
    if "bench_run" in sys.modules:
        return sys.modules["bench_run"]
    loader = importlib.machinery.SourceFileLoader("bench_run", os.path.join(HERE, "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod
    loader.exec_module(mod)
    return mod


def add_arguments(ap, standalone=False):
    g = ap.add_argument_group("cluster (bench/cluster.py, issue #19.6)")
    g.add_argument("--cluster-parts", default="hold,fanout", help="comma list of hold, fanout")
    g.add_argument("--cluster-instances", type=int, default=3, help="hold: wsbridge instances")
    g.add_argument("--cluster-connections", type=int, default=50000, help="hold: connections over all instances")
    g.add_argument("--cluster-hold", type=float, default=35.0,
                   help="hold: seconds the connections are held (past wsbridge's 30 s ping interval)")
    g.add_argument("--cluster-threads", type=int, default=1, help="[server] threads of each instance")
    g.add_argument("--cluster-procs", type=int, default=1,
                   help="hold: load generator processes per instance (each holds its share of the connections)")
    g.add_argument("--cluster-source-ips", type=int, default=8, help="hold: source addresses 127.0.0.1..K")
    g.add_argument("--cluster-concurrency", type=int, default=300, help="hold: upgrades in flight per process")
    g.add_argument("--cluster-subscribers", type=int, default=2000, help="fanout: subscribers in total")
    g.add_argument("--cluster-configs", default="1x1,2x1,1x2",
                   help="fanout: configurations INSTANCESxTHREADS (1 or 2 instances)")
    g.add_argument("--cluster-rounds", type=int, default=3, help="fanout: rounds (the configurations alternate)")
    g.add_argument("--cluster-duration", type=float, default=5.0, help="fanout: seconds of publishing")
    g.add_argument("--cluster-warmup", type=float, default=1.0, help="fanout: first seconds not measured")
    g.add_argument("--cluster-window", type=int, default=8, help="fanout: closed loop, messages in flight per subscriber")
    g.add_argument("--cluster-payload", type=int, default=100, help="fanout: payload bytes")
    g.add_argument("--cluster-table", default="auto", choices=["auto", "on", "off"],
                   help="give every instance a [cluster] table on the run's mosquitto (auto: when the "
                        "binary accepts one)")
    if standalone:
        ap.add_argument("--smoke", action="store_true", help="a tiny run (< 1 min); exits 1 when something broke")
        ap.add_argument("--build-dir", default="build/release")
        ap.add_argument("--wsbridge", help="the wsbridge binary (default: BUILD_DIR/wsbridge)")
        ap.add_argument("--loadgen", help="the load generator (default: BUILD_DIR/bench/wsbridge-loadgen)")
        ap.add_argument("--startup-settle", type=float, default=0.5)
        ap.add_argument("--markdown", help="also write the report to this file")
        ap.add_argument("--json", help="write every raw figure to this file")


def smoke_args(a):
    a.cluster_connections = 600
    a.cluster_hold = 1.0
    a.cluster_subscribers = 100
    a.cluster_rounds = 1
    a.cluster_duration = 1.0
    a.cluster_warmup = 0.2
    a.cluster_configs = "1x1,2x1"


# ---------------------------------------------------------------------------------------------
# Instances


def make_instance_class(h):
    class Instance(h.Server):
        """One wsbridge of the cluster: its instance_id, its port, its admin listener (/metrics)."""

        def __init__(self, ctx, instance_id, threads):
            super().__init__(instance_id, instance_id, ctx)
            self.instance_id = instance_id
            self.threads = threads
            self.admin_port = None
            self.binary = ctx.cluster_binary

        def config(self):
            cluster = ""
            if self.ctx.cluster_table:
                cluster = (f'\n[cluster]\nbroker = "tcp://127.0.0.1:{self.ctx.mosquitto.port}"\n'
                           f'secret = "{self.ctx.cluster_secret}"\n')
            return f"""# written by bench/cluster.py
[server]
log_level = "warn"
shutdown_timeout = "3s"
instance_id = "{self.instance_id}"
threads = {self.threads}

[limits]
max_connections = 50000
max_connections_per_ip = 50000
handshake_timeout = "60s"

[admin]
address = "127.0.0.1"
port = {self.admin_port}

[[listeners]]
address = "127.0.0.1"
port = {self.port}
permessage_deflate = false

[upstreams.bench]
uri = "tcp://127.0.0.1:{self.ctx.mosquitto.port}"
client_id_prefix = "wsbridge-{self.instance_id}"

[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "bench"
allow_subscribe = ["bench/#"]
allow_publish = ["bench/#"]
{cluster}"""

        def argv(self):
            self.admin_port = self.ctx.h.free_port()
            path = os.path.join(self.ctx.workdir, f"{self.instance_id}-{self.port}.toml")
            with open(path, "w") as f:
                f.write(self.config())
            return [self.binary, "--config", path]

        def is_warning(self, line):
            parts = line.split(" ", 2)
            return len(parts) >= 2 and parts[1] in ("warn", "error")

        def healthz(self):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
                return json.loads(r.read())

        def metrics(self):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as r:
                return r.read().decode()

        def sent_total(self):
            total = 0
            for line in self.metrics().splitlines():
                if line.startswith("wsbridge_messages_sent_total"):
                    total += int(float(line.rsplit(" ", 1)[1]))
            return total

        def instance_info(self):
            """The wsbridge_instance_info metric line, when this build has it."""
            for line in self.metrics().splitlines():
                if line.startswith("wsbridge_instance_info"):
                    return line
            return None

    return Instance


def meminfo():
    """/proc/meminfo in bytes, and the TCP line of /proc/net/sockstat (its mem is in pages)."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()[1:]
                out["tcp"] = {parts[i]: int(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}
    return out


def open_files(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def tree_cpu(h, pid):
    total = 0.0
    for p in [pid] + children(pid):
        try:
            total += h.proc_cpu_seconds(p)
        except OSError:
            pass
    return total


class Loadgen:
    """One wsbridge-loadgen run with --wait-stdin, driven by hand: several run at once here."""

    def __init__(self, ctx, name, argv, timeout=600):
        self.name = name
        self.cmd = [ctx.loadgen_binary] + argv + ["--wait-stdin"]
        self.events = queue.Queue()
        self.err_path = os.path.join(ctx.workdir, f"loadgen-{name}-{int(time.time() * 1000)}.err")
        self.err = open(self.err_path, "w")
        self.p = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                  text=True, preexec_fn=ctx.h._child_setup)
        self.timer = threading.Timer(timeout, self.p.kill)
        self.timer.start()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except ValueError:
                    pass
        self.events.put(None)

    def next_event(self, timeout=600):
        ev = self.events.get(timeout=timeout)
        if ev is None:
            self.p.wait()
            raise RuntimeError(f"loadgen {self.name} ended ({self.p.returncode}): {' '.join(self.cmd)}\n"
                               + self.stderr()[-2000:])
        return ev

    def go(self):
        self.p.stdin.write("\n")
        self.p.stdin.flush()

    def stderr(self):
        try:
            with open(self.err_path) as f:
                return f.read()
        except OSError:
            return ""

    def finish(self, timeout=60):
        """After the result: END (the children close their connections), then wait."""
        try:
            self.go()
            self.p.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.timer.cancel()
        self.err.close()
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.timer.cancel()


def errors_of(ev):
    return (ev.get("errors") or {}).get("total", 0)


# ---------------------------------------------------------------------------------------------
# hold: N connections over the instances


def split(n, k):
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


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


# ---------------------------------------------------------------------------------------------
# fanout: two instances against one


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


# ---------------------------------------------------------------------------------------------
# Running and the report


def setup(ctx):
    """What both ways in need: the copied binary, the [cluster] decision."""
    a = ctx.args
    ctx.cluster_binary = os.path.join(ctx.workdir, "wsbridge-cluster")
    shutil.copy2(ctx.wsbridge_binary, ctx.cluster_binary)
    ctx.cluster_secret = secrets.token_hex(24)
    ctx.cluster_table = False
    if a.cluster_table != "off":
        path = os.path.join(ctx.workdir, "cluster-check.toml")
        with open(path, "w") as f:
            f.write(f'[cluster]\nbroker = "tcp://127.0.0.1:1883"\nsecret = "{ctx.cluster_secret}"\n\n'
                    '[[listeners]]\nport = 1\n')
        r = subprocess.run([ctx.cluster_binary, "--check-config", path], capture_output=True, text=True)
        ctx.cluster_table = r.returncode == 0
        if not ctx.cluster_table:
            msg = (r.stderr or r.stdout).strip().splitlines()
            ctx.log(f"this wsbridge has no [cluster] table ({msg[-1] if msg else r.returncode}): "
                    "the instances share the broker through their routes only")
            if a.cluster_table == "on":
                raise SystemExit("--cluster-table on: the binary refuses [cluster]")


def run(ctx, h, results, problems, log):
    """The cluster phase (bench/run --phases cluster, or main() below)."""
    ctx.h = h
    ctx.log = log
    setup(ctx)
    parts = [p for p in ctx.args.cluster_parts.split(",") if p]
    if "hold" in parts:
        try:
            results["cluster-hold"] = hold(ctx)
            problems.extend(results["cluster-hold"]["problems"])
        except Exception as e:  # noqa: BLE001
            problems.append(f"cluster hold: {e}")
            log(problems[-1])
    if "fanout" in parts:
        f = fanout(ctx)
        results["cluster-fanout"] = f
        problems.extend(f["problems"])


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


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap, standalone=True)
    args = ap.parse_args()
    if args.smoke:
        smoke_args(args)
    h = load_bench_run()
    ctx = h.Ctx()
    ctx.args = args
    ctx.warnings = {}
    ctx.workdir = tempfile.mkdtemp(prefix="wsbridge-cluster-")
    build_dir = os.path.join(ROOT, args.build_dir)
    ctx.wsbridge_binary = args.wsbridge or os.path.join(build_dir, "wsbridge")
    ctx.loadgen_binary = args.loadgen or os.path.join(build_dir, "bench", "wsbridge-loadgen")
    for p in (ctx.wsbridge_binary, ctx.loadgen_binary):
        if not os.path.exists(p):
            raise SystemExit(f"missing {p} (build it first: scripts/build.sh release, or bench/run builds it)")
    t0 = time.monotonic()
    results, problems = {}, []
    try:
        ctx.mosquitto = h.Mosquitto(ctx.workdir)
        try:
            run(ctx, h, results, problems, h.log)
        finally:
            ctx.mosquitto.proc.stop()
        info = machine(ctx)
        head = (f"Run of {time.strftime('%Y-%m-%d %H:%M')} ({time.monotonic() - t0:.0f} s"
                f"{', smoke' if args.smoke else ''}): {info['cores']} cores, {info['cpu']}, {info['memory_gib']} GiB, "
                f"Linux {info['kernel']}; wsbridge {info['git']}, mosquitto {info['mosquitto']}; open files "
                f"per process at most {info['nofile']:,}.")
        report = head + "\n\n" + render(ctx, results)
        if ctx.warnings:
            report += "\n"
            for name, lines in ctx.warnings.items():
                report += f"\nServer log, {name}: {len(lines)} line(s) at warn/error level, e.g. `{lines[0][:200]}`"
        if problems:
            report += "\n\nProblems: " + "; ".join(problems)
        print(report)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(report + "\n")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"info": info, "args": vars(args), "cluster_table": ctx.cluster_table,
                           "results": results, "problems": problems,
                           "warnings": ctx.warnings}, f, indent=1, default=str)
        checks = smoke_checks(results) + [("no problems", not problems, problems)]
        failed = [c for c in checks if not c[1]]
        for what, _, detail in failed:
            print(f"FAILED: {what}: {detail}")
        print(f"cluster bench: {len(checks) - len(failed)} passed, {len(failed)} failed")
        return 1 if failed else 0
    finally:
        shutil.rmtree(ctx.workdir, ignore_errors=True)


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


if __name__ == "__main__":
    sys.exit(main())
