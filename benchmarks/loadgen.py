"""What the HTTP benchmarks share: wrk as the load generator, server processes, CPU, load and round trips.

- `wrk` (Debian's package): one thread on loopback, so the client is not the bottleneck; its Lua script builds the
  requests.
- CPU per request: user + system time of the server process and its children (uvicorn workers), read from
  /proc/<pid>/stat before and after a round.
- Round trips per request: a counting proxy between a server and PostgreSQL sees every protocol message the server
  sends; each Sync (extended protocol) or Query (simple protocol) is one wait for the database. Servers are started
  a second time behind it for a short, lightly loaded window, so the proxy never slows the throughput rounds.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    return path


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def wait_http(url: str, timeout: float = 60) -> None:
    """Until `url` answers anything but a 5xx (a server or the sandbox is up), or exit naming it."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not come up")


# ---------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    failed: int  # non-2xx/3xx answers plus socket errors


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:  # wrk prints e.g. "-nan%" without samples
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, script: Path, *, seconds: float, connections: int) -> WrkResult:
    out = subprocess.run(
        [
            require_wrk(),
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, wall = int(done.group(1)), _ms(done.group(2) + done.group(3)) / 1000
    # anchored: the "+/- Stdev" column above the distribution can also end in "50%" (e.g. "87.50%")
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    failed = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed += int(non2xx.group(1)) if non2xx else 0
    return WrkResult(
        requests,
        wall,
        requests / wall if wall else 0.0,
        _ms(p50.group(1)) if p50 else 0.0,
        _ms(p99.group(1)) if p99 else 0.0,
        failed,
    )


# ---------------------------------------------------------------- server processes


def archive(ref: str, into: Path) -> Path:
    """`git archive REF` of this repository, unpacked into `into` (no worktree, no checkout of ours touched): the
    before side of a benchmark run from a commit."""
    into.mkdir()
    root = Path(__file__).resolve().parents[1]
    tar = subprocess.run(["git", "archive", ref], cwd=root, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (uvicorn's worker processes)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state (field 3); ppid is field 4, utime/stime fields 14/15
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s")


@contextmanager
def server_process(command: list[str], port: int, env: dict[str, str], cwd: Path) -> Iterator[int]:
    """Run a server until the block ends; yields its pid once its port accepts connections."""
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, process)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------- round trips


class RoundTripProxy:
    """A TCP proxy to PostgreSQL counting the client's Sync ('S') and Query ('Q') messages: its round trips."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.count = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RoundTripProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset(self) -> None:
        self.count = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        async def from_client() -> None:
            try:
                while True:  # untyped start-up packets: SSL/GSS requests, then the startup message
                    header = await reader.readexactly(8)
                    length, code = struct.unpack("!ii", header)
                    rest = await reader.readexactly(length - 8)
                    up_writer.write(header + rest)
                    await up_writer.drain()
                    if code not in (80877103, 80877104):
                        break
                while True:
                    header = await reader.readexactly(5)
                    kind, length = header[:1], struct.unpack("!i", header[1:])[0]
                    body = await reader.readexactly(length - 4)
                    if kind in (b"S", b"Q"):
                        self.count += 1
                    up_writer.write(header + body)
                    await up_writer.drain()
            except (asyncio.IncompleteReadError, OSError):
                pass
            finally:
                up_writer.close()

        await asyncio.gather(from_client(), pump(up_reader, writer))

    def url(self, database_url: str) -> str:
        """The same database URL through this proxy (TLS off: the proxy reads the plain protocol)."""
        parts = urlsplit(database_url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        netloc_new = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
        query = "&".join(q for q in [parts.query, "sslmode=disable"] if q)
        return urlunsplit((parts.scheme, netloc_new, parts.path, query, parts.fragment))


# ---------------------------------------------------------------- comparing servers in one run


@dataclass
class Side:
    """One server under test: how to start it on a port against a database URL, and the wrk script of a round."""

    name: str
    root: Path
    command: Callable[[int], list[str]]
    env: Callable[[str], dict[str, str]]
    database_url: str
    script: Callable[[int], Path]  # round number (0 = warm-up, -1 = round-trip count) -> Lua script


def compare(
    sides: list[Side],
    *,
    title: str,
    rounds: int,
    seconds: float,
    connections: int,
    baseline: str,
    free_port: Callable[[], int],
) -> None:
    """All sides up at once, measured in alternating rounds (the order rotates), then each counted for round
    trips behind the proxy; prints each round and a summary with ratios to `baseline`."""
    results: dict[str, list[dict[str, float]]] = {side.name: [] for side in sides}
    with ExitStack() as running:
        ports: dict[str, tuple[int, int]] = {}
        for side in sides:
            port = free_port()
            pid = running.enter_context(
                server_process(side.command(port), port, side.env(side.database_url), side.root)
            )
            ports[side.name] = (port, pid)
        for side in sides:
            wrk(f"http://127.0.0.1:{ports[side.name][0]}", side.script(0), seconds=2, connections=connections)
        for round_no in range(1, rounds + 1):
            shift = round_no % len(sides)
            for side in sides[shift:] + sides[:shift]:
                port, pid = ports[side.name]
                script = side.script(round_no)
                cpu_before = tree_cpu_seconds(pid)
                result = wrk(f"http://127.0.0.1:{port}", script, seconds=seconds, connections=connections)
                cpu_ms = (tree_cpu_seconds(pid) - cpu_before) * 1000 / max(1, result.requests)
                results[side.name].append(
                    {
                        "rps": result.rps,
                        "p50": result.p50_ms,
                        "p99": result.p99_ms,
                        "cpu": cpu_ms,
                        "failed": result.failed,
                        "load1": os.getloadavg()[0],
                    }
                )
                print(
                    f"round {round_no} {side.name:8s} {result.rps:8.1f} req/s  p50 {result.p50_ms:6.1f} ms  "
                    f"p99 {result.p99_ms:6.1f} ms  cpu {cpu_ms:5.2f} ms/req  {result.failed} failed  "
                    f"[{load_average()}]",
                    flush=True,
                )
    trips = {side.name: round_trips(side, free_port) for side in sides}
    print(
        f"\n{title}, wrk -t1 -c{connections}, {seconds:.0f} s rounds, median of {rounds} "
        f"(cores: {os.cpu_count()}; {load_average()} at the end):"
    )
    base_rps = statistics.median(r["rps"] for r in results[baseline])
    for name, measured in results.items():
        rps = statistics.median(r["rps"] for r in measured)
        print(
            f"  {name:8s} {rps:8.1f} req/s ({rps / base_rps:4.2f}x {baseline})  "
            f"p50 {statistics.median(r['p50'] for r in measured):6.1f} ms  "
            f"p99 {statistics.median(r['p99'] for r in measured):6.1f} ms  "
            f"cpu {statistics.median(r['cpu'] for r in measured):5.2f} ms/req  "
            f"{trips[name]:4.1f} round trips/req  {int(sum(r['failed'] for r in measured))} failed  "
            f"load1 {min(r['load1'] for r in measured):.2f}-{max(r['load1'] for r in measured):.2f}"
        )


def round_trips(side: Side, free_port: Callable[[], int]) -> float:
    """The side once more, behind the counting proxy, lightly loaded: PostgreSQL round trips per request."""
    parts = urlsplit(side.database_url)
    with RoundTripProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        port = free_port()
        with server_process(side.command(port), port, side.env(proxy.url(side.database_url)), side.root):
            target = f"http://127.0.0.1:{port}"
            wrk(target, side.script(-1), seconds=1, connections=4)
            proxy.reset()
            result = wrk(target, side.script(-1), seconds=2, connections=4)
            return proxy.count / max(1, result.requests)
