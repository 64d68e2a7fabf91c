"""Showing sync progress: a Rich live display on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from hub.sync import SyncRunSummary


class RichProgress:
    """One line per stream: records so far, rate, pages, elapsed."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[name]}"),
                                 TextColumn("{task.fields[records]:>9,} records"),
                                 TextColumn("{task.fields[rate]:>7,.0f}/s"),
                                 TextColumn("{task.fields[pages]:>5} pages"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[status]}"), console=console, transient=False)
        self.tasks: dict[tuple[str, str], TaskID] = {}
        self.start_times: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def started(self, connector: str, stream: str) -> None:
        with self.lock:
            key = (connector, stream)
            self.start_times[key] = time.monotonic()
            self.tasks[key] = self.progress.add_task("", total=None, name=f"{connector}.{stream}",
                                                     records=0, rate=0.0, pages=0, status="")

    def page(self, summary: SyncRunSummary) -> None:
        self._update(summary, "")

    def finished(self, summary: SyncRunSummary) -> None:
        colour = {"succeeded": "green", "stopped": "yellow"}.get(summary.status, "red")
        self._update(summary, f"[{colour}]{summary.status}[/{colour}]")

    def _update(self, summary: SyncRunSummary, status: str) -> None:
        key = (summary.connector, summary.stream)
        elapsed = max(time.monotonic() - self.start_times.get(key, time.monotonic()), 1e-6)
        with self.lock:
            self.progress.update(self.tasks[key], records=summary.records, pages=summary.pages,
                                 rate=summary.records / elapsed, status=status)


class LogProgress:
    """Plain lines on stderr for logs and pipes; one line per finished stream and every 50 pages."""

    def __init__(self, every_pages: int = 50) -> None:
        self.every_pages = every_pages

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def started(self, connector: str, stream: str) -> None:
        self._line(f"sync {connector}.{stream}: started")

    def page(self, summary: SyncRunSummary) -> None:
        if summary.pages % self.every_pages == 0:
            self._line(f"sync {summary.connector}.{summary.stream}: {summary.pages} pages, {summary.records} records")

    def finished(self, summary: SyncRunSummary) -> None:
        self._line(f"sync {summary.connector}.{summary.stream}: {summary.status}, {summary.pages} pages, "
                   f"+{summary.inserted} ~{summary.updated} -{summary.deleted}, {summary.requests} requests"
                   + (f", error: {summary.error}" if summary.error else ""))

    @staticmethod
    def _line(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
