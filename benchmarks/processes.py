"""Subprocess plumbing: measured children (wall time, peak RSS) and sandbox servers (CPU time).

    figures = measure(["-m", "benchmarks.child", "sync", "--config", path])
    with Sandboxes({"stripe": path}) as sandboxes: sandboxes.settings["stripe"]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent   # children run `-m benchmarks...` from here


def measure(args: list[str], *, timeout: float = 7200) -> dict[str, Any]:
    """Run `python args...`; its JSON line plus `wall_seconds`, `peak_rss_mb` and `cpu_seconds` of
    this child alone (reaped with `os.wait4`, whose rusage is the child's own)."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=ROOT)
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []

    def drain(stream: Any, into: list[bytes]) -> None:
        for chunk in iter(lambda: stream.read(65536), b""):
            into.append(chunk)

    memory = TreeMemory(child.pid)
    readers = [threading.Thread(target=drain, args=(child.stdout, out_chunks), daemon=True),
               threading.Thread(target=drain, args=(child.stderr, err_chunks), daemon=True),
               threading.Thread(target=memory.sample, daemon=True)]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    memory.done.set()
    for reader in readers:
        reader.join(timeout)
    out, err = b"".join(out_chunks).decode(), b"".join(err_chunks).decode()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed ({child.returncode}):\n{err[-4000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    result["wall_seconds"] = wall
    # ru_maxrss of a child (KiB on Linux) is at least the parent's RSS when it forked; the child's
    # own VmHWM is exact, so it is the figure when the child reports it
    result["ru_maxrss_mb"] = usage.ru_maxrss / 1024
    result["peak_rss_mb"] = result.get("vm_hwm_mb") or result["ru_maxrss_mb"]
    # the child and the processes it started (a sync's readers): their sampled peak of summed PSS,
    # which counts a page shared by forked processes once, split between them
    result["tree_peak_pss_mb"] = memory.peak_mb
    result["tree_processes"] = memory.processes
    # os.wait4's rusage covers the child and the descendants it waited for (its readers)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


class TreeMemory:
    """Samples the summed proportional set size (PSS) of a process and its descendants."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every = pid, every
        self.done = threading.Event()
        self.peak_mb = 0.0
        self.processes = 1     # the most processes seen at once

    def sample(self) -> None:
        while not self.done.wait(self.every):
            pids = _tree(self.pid)
            total = sum(_pss_kib(pid) for pid in pids) / 1024
            self.peak_mb = max(self.peak_mb, total)
            self.processes = max(self.processes, len(pids))


def _tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:   # it exited meanwhile
            continue
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Sandboxes:
    """One `benchmarks.serve` process per system; `settings[system]` is its connector block."""

    def __init__(self, datasets: dict[str, Path]) -> None:
        self.datasets = datasets
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.settings: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, int] = {}
        self.failed: dict[str, str] = {}      # system -> why its sandbox did not start
        self.startup_seconds = 0.0

    def __enter__(self) -> Sandboxes:
        started = time.perf_counter()
        errors = {}
        for system, path in self.datasets.items():
            errors[system] = tempfile.TemporaryFile("w+")
            self.processes[system] = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.serve", system, str(path)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors[system], text=True, cwd=ROOT)
        try:
            for system, process in list(self.processes.items()):
                assert process.stdout is not None
                line = process.stdout.readline()
                if not line:   # a sandbox that cannot take this dataset: benchmark the others
                    process.wait()
                    errors[system].seek(0)
                    lines = [x for x in errors[system].read().splitlines() if x.strip()]
                    self.failed[system] = lines[-1] if lines else f"exit {process.returncode}"
                    del self.processes[system]
                    continue
                hello = json.loads(line)
                self.settings[system], self.objects[system] = hello["settings"], hello["objects"]
        except BaseException:
            self.__exit__()
            raise
        finally:
            for handle in errors.values():
                handle.close()
        if not self.processes:
            raise RuntimeError(f"no sandbox started: {self.failed}")
        self.startup_seconds = time.perf_counter() - started
        return self

    def cpu(self) -> dict[str, float]:
        return {system: cpu_seconds(p.pid) for system, p in self.processes.items()}

    def request_log(self, system: str) -> list[list[Any]]:
        process = self.processes[system]
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("log\n")
        process.stdin.flush()
        return json.loads(process.stdout.readline())

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            if process.stdin is not None and not process.stdin.closed:
                process.stdin.close()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
