"""nginx in front of N ``sayso serve`` processes on one workspace, on loopback: for tests/test_scale.py and
bench/scale.py.

nginx (Debian's package) runs unprivileged-style from a temporary folder (``nginx -p DIR -c nginx.conf -e
error.log -g 'daemon off;'``: its pid file, logs and temporary files all in DIR), listening on 127.0.0.1 only.
Its configuration is the one docs/operations.md shows: least connections, keep-alive to the processes, a
failed connection retried on the next process, a request already sent never retried (a POST whose process died
is the client's to retry with its Idempotency-Key).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

__all__ = ["NOW", "Cluster", "cpu_seconds", "machine_cpu", "nginx_binary", "nginx_config"]

NOW = "2026-11-25T09:00"


def nginx_binary() -> str | None:
    """nginx's path, or None when it is not installed (``.ci/run`` installs Debian's package)."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def cpu_seconds(roots: dict[str, int], *, command: str | None = "postgres") -> dict[str, float]:
    """User + system CPU seconds used so far by each process in ``roots`` together with its descendants (nginx's
    worker, Uvicorn's workers), and under ``command``'s name by every process of that name (PostgreSQL's
    server: its backends, of every database, and its own processes). Linux /proc; a process gone is not counted."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:  # gone meanwhile
            continue
        fields = rest.split()
        pid = int(stat.parent.name)
        parents[pid], ticks[pid], names[pid] = int(fields[1]), int(fields[11]) + int(fields[12]), head.split("(", 1)[1]
    hertz = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for name, root in roots.items():
        tree = {root}
        for pid in sorted(parents):  # children have larger pids than their parents here (no pid wrap)
            if parents[pid] in tree:
                tree.add(pid)
        found[name] = sum(ticks.get(pid, 0) for pid in tree) / hertz
    if command:
        found[command] = sum(t for pid, t in ticks.items() if names[pid] == command) / hertz
    return found


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every core (Linux /proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    hertz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / hertz, sum(ticks) / hertz


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_config(directory: Path, listen: int, upstreams: list[int]) -> str:
    """The configuration: nginx on 127.0.0.1:``listen`` in front of sayso processes on ``upstreams``."""
    servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in upstreams)
    temp = "\n".join(f"    {kind}_temp_path {directory / kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root root;\n" if os.geteuid() == 0 else ""  # as root, workers would be nobody's, and DIR is ours
    return f"""{user}worker_processes 1;
pid {directory / 'nginx.pid'};
error_log {directory / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    upstream sayso {{
        least_conn;
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{listen};
        client_max_body_size 2m;
        location / {{
            proxy_pass http://sayso;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Request-Id $request_id;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 300s;
        }}
        location = /readyz {{
            proxy_pass http://sayso;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""


class Cluster:
    """``processes`` ``sayso serve`` of ``root`` (each on its own port) behind one nginx, until ``stop``."""

    def __init__(self, root: Path, processes: int, *, env: dict[str, str] | None = None,
                 extra: tuple[str, ...] = (), python: str = sys.executable) -> None:
        nginx = nginx_binary()
        if nginx is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
        self.root, self.env, self.extra, self.python = root, {**os.environ, **(env or {})}, extra, python
        self.now = NOW  # the pinned clock (``--now``) of a process started next
        self.directory = Path(tempfile.mkdtemp(prefix="sayso-nginx-"))
        self.ports = [free_port() for _ in range(processes)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * processes
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.nginx: subprocess.Popen[bytes] | None = None
        try:
            for index in range(processes):
                self.start(index)
            for index in range(processes):
                self.wait_ready(index)
            (self.directory / "nginx.conf").write_text(nginx_config(self.directory, self.port, self.ports))
            self.nginx = subprocess.Popen([nginx, "-p", str(self.directory), "-c", "nginx.conf", "-e", "error.log",
                                           "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            self._wait(lambda: self._answers(f"{self.url}/readyz"), "nginx to answer", self.nginx)
        except BaseException:
            self.stop()
            raise

    def process_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def log(self, index: int) -> Path:
        return self.root.parent / f"serve-{index}.log"

    def start(self, index: int) -> None:
        """Start process ``index`` on its port (again, after it was killed)."""
        with self.log(index).open("ab") as out:
            self.processes[index] = subprocess.Popen(
                [self.python, "-m", "sayso", "serve", "--workspace", str(self.root), "--port", str(self.ports[index]),
                 "--now", self.now, *self.extra], stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def wait_ready(self, index: int, seconds: float = 90) -> None:
        self._wait(lambda: self._answers(f"{self.process_url(index)}/readyz"), f"process {index} to be ready",
                   self.processes[index], seconds)

    def kill(self, index: int) -> None:
        """SIGKILL process ``index``: no chance to finish anything."""
        process = self.processes[index]
        if process is not None:
            process.kill()
            process.wait()

    def terminate(self, index: int, seconds: float = 60) -> int:
        """SIGTERM process ``index`` and wait for it to exit; its exit status."""
        process = self.processes[index]
        assert process is not None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p is not None and p.poll() is None]

    def roots(self) -> dict[str, int]:
        """The processes to account CPU time to, by name: each sayso process, and nginx (with its worker)."""
        named = {f"sayso#{i}": p.pid for i, p in enumerate(self.processes) if p is not None and p.poll() is None}
        return {**named, **({"nginx": self.nginx.pid} if self.nginx is not None else {})}

    def cpu_seconds(self) -> float:
        """CPU seconds the sayso processes and nginx have used so far (those alive)."""
        return sum(cpu_seconds(self.roots(), command=None).values())

    def stop(self) -> None:
        for index, process in enumerate(self.processes):
            if process is not None and process.poll() is None:
                self.terminate(index)
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                self.nginx.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _wait(self, ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None,
              seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"waited in vain for {what}: it exited ({process.returncode}); see "
                                   f"{self.root.parent} and {self.directory / 'error.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited in vain for {what}")
            time.sleep(0.1)
