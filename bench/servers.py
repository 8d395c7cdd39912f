"""Start and stop the systems under test, each as its own process tree on 127.0.0.1, and
read their CPU and memory from /proc."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

from . import ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
JANUS_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (worker processes included)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def tree_usage(root: int) -> tuple[float, float, int]:
    """(utime, stime seconds, resident bytes) summed over the process tree."""
    user, system, rss = 0.0, 0.0, 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        user += int(fields[11]) / CLOCK_TICKS
        system += int(fields[12]) / CLOCK_TICKS
        rss += int(fields[21]) * PAGE_SIZE
    return user, system, rss


def machine_cpu() -> tuple[float, float]:
    """(total, idle) CPU seconds of the whole machine since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) / CLOCK_TICKS, (values[3] + values[4]) / CLOCK_TICKS


def udp_backlog(root: int) -> dict[str, int]:
    """Kernel UDP counters of this network namespace, split between the sockets of the
    process tree `root` (the SFU) and all others (the clients): datagrams dropped because
    a socket's buffer was full, and bytes waiting in receive buffers right now."""
    owned = set()
    for pid in process_tree(root):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    owned.add(target[8:-1])
        except OSError:
            continue
    out = dict.fromkeys(("sfu_drops", "client_drops", "sfu_queued", "client_queued"), 0)
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        side = "sfu" if fields[9] in owned else "client"
        out[f"{side}_drops"] += int(fields[12])
        out[f"{side}_queued"] += int(fields[4].split(":")[1], 16)
    return out


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # answering, if only with an error
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class System(ABC):
    """One system under test: its server process(es) and how load clients reach it."""

    name: str
    client: str  # which load-client adapter speaks its signaling

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def create_rooms(self, count: int) -> list[str]: ...

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _spawn(self, command: list[str], log_name: str, **options: object) -> None:
        log = open(self.workdir / log_name, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **options,
        )
        log.close()

    def stop(self) -> None:
        """SIGTERM to our own process group (the server and its workers), then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


class Kaamos(System):
    name = client = "kaamos"

    def __init__(self, workdir: Path, source: Path = ROOT, workers: int = 1) -> None:
        super().__init__(workdir)
        self.source = source  # another checkout measures another version side by side
        self.workers = workers
        self.config = workdir / "kaamos.toml"
        self.redis: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = free_port()
        cluster = ""
        if self.workers > 1:  # workers share their rooms through Redis
            cluster = f'[cluster]\nredis_url = "{self._start_redis()}"\n'
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {port}\ndrain_seconds = 0.0\n'
            f'state_dir = "{self.workdir / "kaamos-state"}"\n'
            f'[ice]\nhost_addresses = ["127.0.0.1"]\n[log]\nlevel = "warning"\n{cluster}'
        )
        command = [sys.executable, "-m", "kaamos_sfu", "serve", "--config", str(self.config)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        env = dict(os.environ, PYTHONPATH=str(self.source))
        self._spawn(command, "kaamos.log", cwd=self.source, env=env)
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + "/health", self.process)  # type: ignore[arg-type]

    def _start_redis(self) -> str:
        """A redis-server for the workers (not an SFU descendant: its CPU, a heartbeat a
        second per worker and a few calls per join, is not counted)."""
        port = free_port()
        self.redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"redis://127.0.0.1:{port}/0"
            except OSError:
                if time.monotonic() > deadline or self.redis.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        super().stop()
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
            self.redis = None

    def create_rooms(self, count: int) -> list[str]:
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "kaamos_sfu",
                "token",
                "--sub",
                "bench",
                "--config",
                str(self.config),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=self.source,
            env=dict(os.environ, PYTHONPATH=str(self.source)),
        ).stdout.strip()
        rooms: list[str] = []
        deadline = time.monotonic() + 120
        while len(rooms) < count:
            request = urllib.request.Request(
                self.url + "/api/rooms/create",
                data=b"{}",
                method="POST",
                headers={"Authorization": f"Bearer {token}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    rooms.append(str(json.load(response)["room_id"]))
            except urllib.error.HTTPError as exc:
                # A server that rate-limits room creation says when to try again.
                if exc.code != 429 or time.monotonic() > deadline:
                    raise
                time.sleep(float(exc.headers.get("Retry-After", "1")))
        return rooms


class NaiveRelay(System):
    name = client = "relay"

    def start(self) -> None:
        port = free_port()
        self._spawn(
            [sys.executable, "-m", "bench.naive_relay", "--port", str(port)], "relay.log", cwd=ROOT
        )
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + "/", self.process, timeout=20)  # type: ignore[arg-type]

    def create_rooms(self, count: int) -> list[str]:
        return [f"room{i}" for i in range(count)]


JANUS_CONFIG = """general: {{
	configs_folder = "{conf}"
	plugins_folder = "{conf}/plugins"
	transports_folder = "{conf}/transports"
	events_folder = "{conf}/events"
	loggers_folder = "{conf}/loggers"
	debug_level = 4
	interface = "127.0.0.1"
	session_timeout = 60
}}
media: {{
	rtp_port_range = "20000-40000"
}}
nat: {{
	ice_enforce_list = "lo"
	ignore_mdns = true
}}
"""
JANUS_HTTP = """general: {{
	json = "compact"
	base_path = "/janus"
	http = true
	port = {port}
	ip = "127.0.0.1"
}}
admin: {{
	admin_http = false
}}
"""


class Janus(System):
    """Debian's `janus` with only the VideoRoom plugin and the HTTP transport.

    Janus skips interfaces flagged IFF_LOOPBACK when gathering candidates; bench/lo_shim.c
    (LD_PRELOAD) clears that flag so that, with ice_enforce_list = "lo", its only host
    candidate is 127.0.0.1."""

    name = client = "janus"

    def start(self) -> None:
        if shutil.which("janus") is None:
            raise RuntimeError("janus is not installed (apt-get install janus)")
        conf = self.workdir / "janus"
        if conf.exists():
            shutil.rmtree(conf)
        for folder, library in (
            ("plugins", "libjanus_videoroom.so"),
            ("transports", "libjanus_http.so"),
            ("events", None),
            ("loggers", None),
        ):
            (conf / folder).mkdir(parents=True)
            if library:
                (conf / folder / library).symlink_to(JANUS_LIBS / folder / library)
        port = free_port()
        (conf / "janus.jcfg").write_text(JANUS_CONFIG.format(conf=conf))
        (conf / "janus.transport.http.jcfg").write_text(JANUS_HTTP.format(port=port))
        (conf / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
        shim = conf / "lo_shim.so"
        subprocess.run(
            [
                "gcc",
                "-shared",
                "-fPIC",
                "-O2",
                "-o",
                str(shim),
                str(ROOT / "bench" / "lo_shim.c"),
                "-ldl",
            ],
            check=True,
        )
        self._spawn(
            ["janus", "-F", str(conf)], "janus.log", env=dict(os.environ, LD_PRELOAD=str(shim))
        )
        self.url = f"http://127.0.0.1:{port}/janus"
        wait_http(self.url + "/info", self.process)  # type: ignore[arg-type]

    def create_rooms(self, count: int) -> list[str]:
        return [str(1000 + i) for i in range(count)]  # the worker creates them over the API


def make_system(spec: str, workdir: Path, kaamos_workers: int = 1) -> System:
    """`kaamos`, `janus`, `relay`, or `LABEL@/path/to/checkout` for another version of
    Kaamos, reported under LABEL (e.g. `kaamos-before@/tmp/old`)."""
    label, _, source = spec.partition("@")
    if source or label == "kaamos":
        system = Kaamos(workdir, Path(source) if source else ROOT, kaamos_workers)
        system.name = label
        return system
    if label == "janus":
        return Janus(workdir)
    if label == "relay":
        return NaiveRelay(workdir)
    raise ValueError(f"unknown system {spec!r}")
