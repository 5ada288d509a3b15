"""The MQTT pass-through phase of bench/run (issue #17.5): `--phases mqtt-passthrough`.

The same MQTT 3.1.1 clients (the load generator with --mqtt: CONNECT, SUBSCRIBE and PUBLISH
packets in binary WebSocket frames, as mqtt.js sends them) through two bridges in front of the
run's one mosquitto:

  wsbridge    a route with adapter "mqtt", mode "passthrough" (the client offers the "mqtt"
              subprotocol, as mqtt.js does)
  websockify  Debian's websockify (`websockify PORT 127.0.0.1:MOSQUITTO`), the raw WebSocket-to-TCP
              bridge a user would pick; a Python process forked per connection. Its 0.10 answers
              a client offering the "mqtt" subprotocol with "400 Invalid protocol selected"
              (it accepts only "binary" or none), so mqtt.js cannot use it at all: the load
              generator offers no subprotocol there.

Each measurement runs on a fresh server, alternating the servers round by round (--mqtt-rounds):

  mqtt-max    fan-out, closed loop: --mqtt-subscribers WebSocket clients subscribed (QoS 0) to one
              topic, a publisher on mosquitto over TCP publishing as fast as the deliveries keep
              up (--window per subscriber in flight): delivered messages/s at the clients
  mqtt-rate   the same at a moderate rate (--mqtt-rate, default half websockify's median max):
              latency p50/p99 from the publisher's clock to the client's
  mqtt-pub0   --mqtt-publishers WebSocket clients publishing QoS 0 through the bridge (closed
  mqtt-pub1   loop, round robin); QoS 1 in mqtt-pub1 (PUBACKs counted); one MQTT subscriber on
              mosquitto over TCP counts the messages: messages/s
  mqtt-idle   --mqtt-idle-steps connected, subscribed, idle MQTT clients: the bridge's memory
              delta from before the first one to the largest step, divided by its count

The bridge's CPU (utime + stime, and cutime + cstime of children it reaped) and memory (RSS and
PSS from smaps_rollup) are summed over its process tree: websockify's forked children are part of
what it costs. PSS shares the pages the children still share with their parent, so the PSS sum
is the memory the machine really spends; the RSS sum counts those shared pages once per process.

Targets (the issue's, against websockify): fan-out and publish throughput >= 2x, CPU per message
<= 0.5x, memory per connection <= 0.5x. A wsbridge binary without mode = "passthrough" (before
#17's server side) is left out, said in the report: the phase then measures websockify only.
"""
import os
import shutil
import signal
import subprocess
import time

# The table, the targets and the smoke checks, which bench/run calls through this module.
from mqtt_passthrough_report import header, render, smoke_checks  # noqa: F401

SERVERS = ("wsbridge", "websockify")
LABELS = {"wsbridge": "wsbridge pass-through", "websockify": "websockify 0.10"}
PHASES = ("mqtt-max", "mqtt-rate", "mqtt-pub0", "mqtt-pub1", "mqtt-idle")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# A process tree's CPU and memory


def tree_pids(root):
    """root and every process below it (by the ppid of /proc/*/stat)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_seconds(root):
    """utime + stime of every live process of the tree, plus cutime + cstime (children that
    exited and were reaped: websockify's closed connections)."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile: in its parent's cutime from now on
    return total / CLK_TCK


def tree_memory(root):
    """Summed RSS and PSS (bytes) and the number of processes of the tree."""
    rss = pss = n = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    parts = line.split()
                    if parts[0] == "Rss:":
                        rss += int(parts[1]) * 1024
                    elif parts[0] == "Pss:":
                        pss += int(parts[1]) * 1024
            n += 1
        except (OSError, IndexError, ValueError):
            continue
    return {"rss": rss, "pss": pss, "procs": n}


# ---------------------------------------------------------------------------------------------
# The servers


def wsbridge_route(ctx):
    return f"""
[upstreams.bench]
uri = "tcp://127.0.0.1:{ctx.mosquitto.port}"

[[routes]]
path = "/mqtt"
adapter = "mqtt"
mode = "passthrough"
upstream = "bench"
allow_subscribe = ["bench/#"]
allow_publish = ["bench/#"]
"""


def wsbridge_supports_passthrough(ctx):
    path = os.path.join(ctx.workdir, "passthrough-check.toml")
    with open(path, "w") as f:
        f.write('[[listeners]]\naddress = "127.0.0.1"\nport = 1\n' + wsbridge_route(ctx))
    r = subprocess.run([ctx.wsbridge_binary, "--check-config", path], capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def make_servers(ctx, h, log):
    class WsbridgePassthrough(h.Wsbridge):
        subprotocol = "mqtt"  # as mqtt.js offers it

        def config(self):
            text = super().config()
            # The JSON route of bench/run's config is replaced by the pass-through one.
            return text[:text.index("[upstreams.bench]")] + wsbridge_route(self.ctx)

    class Websockify(h.Server):
        subprotocol = ""  # websockify 0.10 refuses "mqtt" (400 Invalid protocol selected)

        def __init__(self, ctx):
            super().__init__("websockify", LABELS["websockify"], ctx)
            self.tree = []

        def argv(self):
            return [shutil.which("websockify"), f"127.0.0.1:{self.port}",
                    f"127.0.0.1:{self.ctx.mosquitto.port}"]

        def stop(self):
            pids = tree_pids(self.proc.pid) if self.proc else []
            code = super().stop()  # SIGTERM: websockify terminates its children itself
            for pid in pids[1:]:  # any it left behind (forked children have no PDEATHSIG)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if code == -signal.SIGKILL:
                # Server.stop killed it: websockify 0.10's SIGTERM handler raises an exception
                # once, and when that lands in a finalizer it is lost ("Exception ignored in:
                # <Finalize object, dead>") and the server goes on, deaf to further SIGTERMs. The
                # peer's bug, said in the report's notes, not a problem of the run.
                note = ("websockify did not exit on SIGTERM (websockify 0.10 loses its Terminate "
                        "exception in a finalizer) and was killed")
                if note not in self.ctx.mqtt_note:
                    self.ctx.mqtt_note.append(note)
                return None
            return code

        def is_warning(self, line):
            # "handler exception: [Errno 104] Connection reset by peer": the load generator ends
            # its connections with a close frame and a reset (no TIME_WAIT), not a bridge fault.
            low = line.lower()
            if "connection reset by peer" in low or "broken pipe" in low:
                return False
            return "exception" in low or "traceback" in low or "failed" in low

    servers = []
    ctx.mqtt_note = []
    for name in [n for n in ctx.args.mqtt_servers.split(",") if n]:
        if name not in SERVERS:
            raise SystemExit(f"--mqtt-servers: unknown {name!r} (one of {', '.join(SERVERS)})")
        if name == "wsbridge":
            ok, why = wsbridge_supports_passthrough(ctx)
            if not ok:
                ctx.mqtt_note.append("this wsbridge binary has no mode = \"passthrough\" yet: measured on websockify only")
                log(f"mqtt-passthrough: {ctx.mqtt_note[-1]} ({why[:300]})")
                continue
            s = WsbridgePassthrough(ctx, name="wsbridge_pt", label=LABELS["wsbridge"])
        else:
            if shutil.which("websockify") is None:
                ctx.mqtt_note.append("websockify is not installed (apt-get install websockify): measured on wsbridge only")
                log(f"mqtt-passthrough: {ctx.mqtt_note[-1]}")
                continue
            s = Websockify(ctx)
        s.kind = name
        servers.append(s)
    return servers


# ---------------------------------------------------------------------------------------------
# Measurements


def mqtt_args(server):
    argv = ["--mqtt"]
    if server.subprotocol:
        argv += ["--subprotocol", server.subprotocol]
    return argv


def loaded_run(ctx, h, server, argv, count_key):
    """Runs one fan-out or publish load; the server tree's and mosquitto's CPU over it."""
    cpu = {}

    def on_ready(ev):
        cpu["start"] = tree_cpu_seconds(server.proc.pid)
        cpu["mosq"] = h.proc_cpu_seconds(ctx.mosquitto.proc.pid)
        cpu["machine"] = h.machine_busy_seconds()
        cpu["t"] = time.monotonic()

    _, r = h.run_loadgen(ctx, argv, on_ready)
    cpu_s = tree_cpu_seconds(server.proc.pid) - cpu["start"]
    mosq_s = h.proc_cpu_seconds(ctx.mosquitto.proc.pid) - cpu["mosq"]
    machine_s = h.machine_busy_seconds() - cpu["machine"]
    wall = max(time.monotonic() - cpu["t"], 1e-9)
    loadgen_s = r["loadgen_run_cpu_seconds"]
    n = max(r["delivered"], 1)
    lat = r["latency_us"]
    return {
        count_key: r["delivered_per_second"],
        "delivered_per_s": r["delivered_per_second"],
        "published_per_s": r["publish_rate"],
        "cpu_us_per_msg": cpu_s / n * 1e6,
        "cpu_util": cpu_s / wall,
        "mosquitto_util": mosq_s / wall,
        "loadgen_cpu_util": loadgen_s / max(r["publish_seconds"], 1e-9),
        "other_load": max(0.0, machine_s - cpu_s - mosq_s - loadgen_s) / wall,
        "p50_us": lat["p50"], "p99_us": lat["p99"], "p999_us": lat["p999"], "max_us": lat["max"],
        "missing": r["missing"], "duplicates": r["duplicates"],
        "acked": r.get("acked"), "published": r["published"],
        "errors": r["errors"]["total"] + (r["connections"] - r["ready"]),
    }


def fanout(ctx, h, server, rate, window=None):
    a = ctx.args
    argv = ["fanout", "--url", server.url("/mqtt"), *mqtt_args(server),
            "--subscribers", str(a.mqtt_subscribers), "--topic", "bench/fanout",
            "--publisher", f"mqtt://127.0.0.1:{ctx.mosquitto.port}", "--rate", str(rate),
            "--window", str(window or a.window), "--duration", str(a.mqtt_duration),
            "--warmup", str(a.warmup), "--payload", str(a.payload), "--drain-quiet", str(a.drain_quiet),
            "--settle", str(a.settle), "--procs", str(a.mqtt_procs)]
    return loaded_run(ctx, h, server, argv, "deliveries_per_s")


def fanout_max(ctx, h, server):
    """The closed-loop fan-out at each of --mqtt-windows (messages in flight per subscriber), one
    after the other on the same server: its best, with the window it took. A small window leaves
    a bridge with a short pipeline idle between round trips, a large one only adds queueing; the
    best differs from bridge to bridge, so each gets its own."""
    runs = {w: fanout(ctx, h, server, 0, w) for w in ctx.args.mqtt_windows}
    w, best = max(runs.items(), key=lambda kv: kv[1]["delivered_per_s"])
    return dict(best, window=w, errors=sum(v["errors"] for v in runs.values()),
                missing=sum(v["missing"] for v in runs.values()),
                by_window={k: round(v["delivered_per_s"]) for k, v in runs.items()})


def publish(ctx, h, server, qos):
    a = ctx.args
    argv = ["publish", "--url", server.url("/mqtt"), *mqtt_args(server),
            "--connections", str(a.mqtt_publishers), "--topic", "bench/publish", "--qos", str(qos),
            "--broker", f"mqtt://127.0.0.1:{ctx.mosquitto.port}", "--rate", "0",
            "--window", str(a.mqtt_publish_window), "--duration", str(a.mqtt_duration),
            "--warmup", str(a.warmup), "--payload", str(a.payload),
            "--drain-quiet", str(a.drain_quiet), "--settle", str(a.settle)]
    v = loaded_run(ctx, h, server, argv, "messages_per_s")
    if qos == 1 and v["acked"] is not None and v["acked"] < v["published"]:
        v["errors"] += v["published"] - v["acked"]  # a QoS 1 PUBLISH never acknowledged
    return v


def idle(ctx, h, server):
    """The tree's memory delta from before the first connection, divided by the connections, at
    each step all of whose connections were up (subscribed); websockify 0.10 cannot hold more
    than about 500 (select() on descriptors past 1024), so its larger steps stay empty."""
    a = ctx.args
    steps = a.mqtt_idle_steps
    time.sleep(a.idle_settle)
    base = tree_memory(server.proc.pid)
    points = []

    def on_ready(ev):
        time.sleep(a.idle_settle)
        points.append((ev["target"], ev["ready"], tree_memory(server.proc.pid)))

    argv = ["idle", "--url", server.url("/mqtt"), *mqtt_args(server),
            "--steps", ",".join(str(s) for s in steps), "--topic", "bench/idle", "--procs", "1"]
    _, r = h.run_loadgen(ctx, argv, on_ready)
    out = {"errors": r["errors"]["total"] + (max(steps) - r["ready"]),
           "points": [(n, ready, m["rss"], m["pss"], m["procs"]) for n, ready, m in points]}
    for n, ready, m in points:
        full = ready == n
        out[f"pss_at_{n}"] = (m["pss"] - base["pss"]) / n if full else None
        out[f"rss_at_{n}"] = (m["rss"] - base["rss"]) / n if full else None
        out[f"procs_at_{n}"] = m["procs"]
        out[f"ready_at_{n}"] = ready
    return out


def run(ctx, h, each_round, results, problems, log):
    """results["mqtt-max"|"mqtt-rate"|"mqtt-pub0"|"mqtt-pub1"|"mqtt-idle"] hold the rows."""
    a = ctx.args
    servers = make_servers(ctx, h, log)
    ctx.mqtt_servers_run = servers
    if not servers:
        return
    rounds = a.mqtt_rounds
    each_round("mqtt-max", lambda s: fanout_max(ctx, h, s), servers, rounds)
    rate = a.mqtt_rate
    if rate is None:
        # Half the slower bridge's median maximum, per subscriber: both keep up with it.
        maxima = {s.name: [row[s.name]["delivered_per_s"] for row in results["mqtt-max"] if row.get(s.name)]
                  for s in servers}
        medians = [h.summary(v)[0] for v in maxima.values() if v]
        rate = 0.5 * min(medians) / a.mqtt_subscribers if medians else 10.0
        rate = max(rate, 1.0)
    ctx.mqtt_rate_used = rate
    log(f"mqtt-rate: {rate:.1f} messages/s to {a.mqtt_subscribers} subscribers")
    each_round("mqtt-rate", lambda s: fanout(ctx, h, s, rate), servers, rounds)
    each_round("mqtt-pub0", lambda s: publish(ctx, h, s, 0), servers, rounds)
    each_round("mqtt-pub1", lambda s: publish(ctx, h, s, 1), servers, rounds)
    each_round("mqtt-idle", lambda s: idle(ctx, h, s), servers, rounds)
