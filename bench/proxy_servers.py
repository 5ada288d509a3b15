"""The backends and the proxies of bench/run's proxy phase (bench/proxy.py): wsbridge with
[[proxy]] tables, nginx and HAProxy configured alike, the "direct" pseudo-proxy, the HTTP backend
(the load generator's httpd) and the echo backend (a wsbridge echo route)."""
import os
import shutil
import subprocess

SERVERS = ("wsbridge", "nginx", "haproxy", "direct")
ECHO_PATH = "/echo"


def wsbridge_proxy_tables(http_port, echo_port):
    return f"""
[[proxy]]
path = "/"
backend = "http://127.0.0.1:{http_port}"

[[proxy]]
path = "{ECHO_PATH}"
backend = "ws://127.0.0.1:{echo_port}"
# (The defaults: a relayed WebSocket leaves the prefix's max_connections once upgraded, so 2,000
# of them pass the default 256; the idle phases would fail if that regressed.)
"""


def wsbridge_supports_proxy(ctx):
    path = os.path.join(ctx.workdir, "proxy-check.toml")
    with open(path, "w") as f:
        f.write('[[listeners]]\naddress = "127.0.0.1"\nport = 1\n' + wsbridge_proxy_tables(9, 9))
    r = subprocess.run([ctx.wsbridge_binary, "--check-config", path], capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def version_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return ((r.stdout or "") + (r.stderr or "")).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def wsbridge_head(threads, port):
    return f"""# written by bench/proxy.py
[server]
log_level = "warn"
shutdown_timeout = "2s"
threads = {threads}

[limits]
max_connections = 50000
max_connections_per_ip = 50000
max_http_connections_per_ip = 50000
handshake_timeout = "30s"

[[listeners]]
address = "127.0.0.1"
port = {port}
permessage_deflate = false
"""


def make_classes(h):
    class HttpBackend(h.Server):
        role = "load"

        def __init__(self, ctx):
            super().__init__("proxy_httpd", "HTTP backend", ctx)

        def argv(self):
            return [self.ctx.loadgen_binary, "httpd", "--port", str(self.port),
                    "--body-bytes", str(self.ctx.args.proxy_http_body)]

    class EchoBackend(h.Wsbridge):
        role = "load"

        def config(self):
            return wsbridge_head(self.ctx.args.proxy_backend_threads, self.port) + (
                f'\n[[routes]]\npath = "{ECHO_PATH}"\nadapter = "echo"\n')

    class WsbridgeProxy(h.Wsbridge):
        def config(self):
            b = self.ctx.proxy_backends
            return wsbridge_head(self.ctx.args.proxy_threads, self.port) + wsbridge_proxy_tables(
                b["http"].port, b["echo"].port)

    class Nginx(h.Server):
        def argv(self):
            d = os.path.join(self.ctx.workdir, f"nginx-{self.port}")
            os.makedirs(d, exist_ok=True)
            b = self.ctx.proxy_backends
            user = "user root;\n" if os.geteuid() == 0 else ""
            conf = f"""# written by bench/proxy.py
{user}worker_processes {self.ctx.args.proxy_threads};
daemon off;
pid {d}/nginx.pid;
error_log stderr warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 10000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  upstream http_backend {{ server 127.0.0.1:{b["http"].port}; keepalive 64; keepalive_requests 1000000; }}
  upstream echo_backend {{ server 127.0.0.1:{b["echo"].port}; }}
  server {{
    listen 127.0.0.1:{self.port};
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    location / {{
      proxy_pass http://http_backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
    location {ECHO_PATH} {{
      proxy_pass http://echo_backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }}
  }}
}}
"""
            path = os.path.join(d, "nginx.conf")
            with open(path, "w") as f:
                f.write(conf)
            return [self.ctx.proxy_tools["nginx"], "-c", path, "-p", d + "/", "-e", "stderr"]

        def is_warning(self, line):
            return any(f"[{lvl}]" in line for lvl in ("warn", "error", "crit", "alert", "emerg"))

    class Haproxy(h.Server):
        def argv(self):
            b = self.ctx.proxy_backends
            conf = f"""# written by bench/proxy.py
global
  nbthread {self.ctx.args.proxy_threads}
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  timeout tunnel 1h
  http-reuse always
  option forwardfor
frontend fe
  bind 127.0.0.1:{self.port}
  use_backend echo_be if {{ path {ECHO_PATH} }} || {{ path_beg {ECHO_PATH}/ }}
  default_backend http_be
backend http_be
  server s1 127.0.0.1:{b["http"].port}
backend echo_be
  server s1 127.0.0.1:{b["echo"].port}
"""
            path = os.path.join(self.ctx.workdir, f"haproxy-{self.port}.cfg")
            with open(path, "w") as f:
                f.write(conf)
            return [self.ctx.proxy_tools["haproxy"], "-db", "-f", path]

        def is_warning(self, line):
            return "[WARNING]" in line or "[ALERT]" in line

    class Direct(h.Server):
        """No proxy: the load generator on the backends themselves."""

        def start(self):
            self.proc = None

        def stop(self):
            return None

        def url(self, path):
            b = self.ctx.proxy_backends
            port = b["echo"].port if path.startswith(ECHO_PATH) else b["http"].port
            return f"{'ws' if path.startswith(ECHO_PATH) else 'http'}://127.0.0.1:{port}{path}"

    return HttpBackend, EchoBackend, WsbridgeProxy, Nginx, Haproxy, Direct


def make_servers(ctx, h, log):
    """The backends (not started) and the proxies of --proxy-servers that can run here."""
    HttpBackend, EchoBackend, WsbridgeProxy, Nginx, Haproxy, Direct = make_classes(h)
    ctx.proxy_backends = {"http": HttpBackend(ctx),
                          "echo": EchoBackend(ctx, name="proxy_echo", label="echo backend")}
    ctx.proxy_tools = {}
    ctx.proxy_note = []
    servers = []
    for name in [n for n in ctx.args.proxy_servers.split(",") if n]:
        if name not in SERVERS:
            raise SystemExit(f"--proxy-servers: unknown {name!r} (one of {', '.join(SERVERS)})")
        if name == "wsbridge":
            ok, why = wsbridge_supports_proxy(ctx)
            if not ok:
                ctx.proxy_note.append("this wsbridge binary has no [[proxy]] yet: measured on the other proxies only")
                log(f"proxy: {ctx.proxy_note[-1]} ({why[:300]})")
                continue
            s = WsbridgeProxy(ctx, name="wsbridge_proxy", label="wsbridge [[proxy]]")
        elif name in ("nginx", "haproxy"):
            tool = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
            if tool is None:
                ctx.proxy_note.append(f"{name} is not installed (apt-get install {name}): left out")
                log(f"proxy: {ctx.proxy_note[-1]}")
                continue
            ctx.proxy_tools[name] = tool
            if name == "nginx":
                version = version_line([tool, "-v"]).split("/")[-1]
                s = Nginx("nginx", f"nginx {version}", ctx)
            else:
                words = version_line([tool, "-v"]).split()  # HAProxy version 2.6.12-1+deb12u4 ...
                version = words[2] if len(words) > 2 else "?"
                s = Haproxy("haproxy", f"HAProxy {version.split('-')[0]}", ctx)
            ctx.proxy_versions = getattr(ctx, "proxy_versions", {})
            ctx.proxy_versions[name] = version
        else:
            s = Direct("direct", "direct (no proxy)", ctx)
        s.kind = name
        servers.append(s)
    return servers
