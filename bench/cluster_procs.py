"""The processes of bench/cluster.py (issue #19.6): a wsbridge instance of the cluster (its config,
/healthz and /metrics), a wsbridge-loadgen run driven by hand, and the /proc readers both parts use."""
import json
import os
import queue
import subprocess
import threading
import time
import urllib.request


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
max_http_connections_per_ip = 50000
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
                                  text=True, preexec_fn=ctx.h._load_setup)
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


def split(n, k):
    return [n // k + (1 if i < n % k else 0) for i in range(k)]
