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

The parts are cluster_hold.py and cluster_fanout.py, their processes cluster_procs.py, the report
cluster_report.py.

Only /usr/bin/python3 and the standard library. Traffic goes to 127.0.0.x only.
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from cluster_fanout import fanout  # noqa: E402 - the parts, next to this script
from cluster_hold import hold  # noqa: E402
from cluster_report import machine, render, smoke_checks  # noqa: E402, F401 - render: bench/run's table


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
# Running


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



if __name__ == "__main__":
    sys.exit(main())
