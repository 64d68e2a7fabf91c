"""Reading a connector in a process of its own, beside the writer.

A sync is CPU-bound: HTTP, JSON parsing, mapping and preparing each record (its canonical JSON
and checksum) cost more than writing it, and the threads of one process share one GIL. A
`ReaderProcess` runs one connector's reads in a forked child that sends each page with its
records already prepared (`hub.prepared`). The parent stays the only writer and commits batches
with their page state exactly as it does for pages read in a thread, so the guarantees hold: a
reader commits nothing, and pages it read that the writer did not commit are read again next time.

    reader = ReaderProcess(connector, name="billing")
    try:
        for page in reader.read("invoices", state): ...
    finally:
        reader.close()

The child is forked, so it starts in milliseconds with the configured connector and its imports.
It ignores SIGINT and SIGTERM: the parent decides when to stop (it cancels the read), and the
child exits when told to, or when its command pipe closes because the parent is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from hub.connector import Connector
from hub.errors import ConnectorError
from hub.prepared import PreparedRecord, prepare

AHEAD_PAGES = 32      # pages a reader may prepare before the writer takes them: bounds its memory
CLOSE_SECONDS = 10.0  # how long a reader may take to finish its page and exit before it is killed


@dataclass(frozen=True, slots=True)
class PreparedPage:
    """A `Page` whose records were prepared by the reader: same state, notes and restart flag."""

    records: Sequence[PreparedRecord]
    state: Mapping[str, Any] | None
    notes: Sequence[str] = ()
    full_refresh: bool = False


def supported() -> bool:
    """Reader processes are forked: Linux only (elsewhere fork is unsafe or missing; threads then)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


class ReaderProcess:
    """One connector's reads, one stream at a time, in a forked child process."""

    def __init__(self, connector: Connector, *, name: str) -> None:
        self.name = name
        self.peak_rss_mb: float | None = None   # the child's own peak, reported when it exits
        self._requests = connector.request_count
        self._pending = False                    # a read was cancelled: its last events are unread
        context = multiprocessing.get_context("fork")
        commands_in, self._commands = context.Pipe(duplex=False)
        self._events, events_out = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve, args=(connector, commands_in, events_out, (self._commands, self._events)),
            name=f"churnhub-reader-{name}", daemon=True)
        self._process.start()
        commands_in.close()
        events_out.close()

    @property
    def request_count(self) -> int:
        """HTTP requests the connector has made in the child so far."""
        return self._requests

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[PreparedPage]:
        """The pages of `stream` after `state`; closing this iterator early cancels the read."""
        self._settle()
        self._commands.send(("read", stream, state))
        finished = False
        try:
            while True:
                try:
                    event = self._receive()
                except ConnectorError:
                    finished = True
                    raise
                self._requests = event[-1]
                if event[0] == "page":
                    yield PreparedPage(event[1], event[2], event[3], event[4])
                    continue
                finished = True
                if event[0] == "error":
                    raise event[1]
                return
        finally:
            if not finished:   # do not wait for the page in flight: the next read or close() drains it
                try:
                    self._commands.send(("cancel",))
                    self._pending = True
                except OSError:   # the child is gone; the next read reports it
                    pass

    def close(self) -> None:
        """Ask the child to exit, wait for it (killing it after CLOSE_SECONDS), keep its peak RSS."""
        if self._process.is_alive():
            try:
                self._commands.send(("exit",))
                while self._events.poll(CLOSE_SECONDS):
                    event = self._events.recv()
                    if event[0] == "exited":
                        self.peak_rss_mb = event[1]
                        break
            except (EOFError, OSError):
                pass
        self._process.join(CLOSE_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._commands.close()
        self._events.close()

    def _settle(self) -> None:
        """Discard what a cancelled read still sends, up to its last event."""
        while self._pending:
            event = self._receive()
            self._requests = event[-1]
            self._pending = event[0] == "page"

    def _receive(self) -> tuple[Any, ...]:
        try:
            event: tuple[Any, ...] = self._events.recv()
        except (EOFError, OSError):
            self._process.join(1.0)
            raise ConnectorError(f"{self.name}: its reader process exited unexpectedly "
                                 f"(exit code {self._process.exitcode})") from None
        return event


# --- in the child ------------------------------------------------------------------------------

def _serve(connector: Connector, commands: Connection, events: Connection,
           parent_ends: tuple[Connection, ...]) -> None:
    """The child's loop: one read at a time; a sender thread ships pages while the next is read."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for end in parent_ends:   # so that the parent closing its ends reaches us as end-of-file
        end.close()
    outbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=AHEAD_PAGES)
    sender = threading.Thread(target=_send_all, args=(outbox, events), daemon=True)
    sender.start()
    try:
        while True:
            try:
                command = commands.recv()
            except (EOFError, OSError):
                return
            if command[0] == "exit":
                outbox.put(("exited", _peak_rss_mb()))
                return
            if command[0] == "read":   # anything else is a cancel that came after its read ended
                last = _read_stream(connector, command[1], command[2], commands, outbox)
                outbox.put(last)
                if last[0] == "exit":   # told to exit in the middle of a read
                    outbox.put(("exited", _peak_rss_mb()))
                    return
    finally:
        outbox.put(None)
        sender.join(CLOSE_SECONDS)
        connector.close()


def _read_stream(connector: Connector, stream: str, state: Mapping[str, Any] | None,
                 commands: Connection, outbox: queue.Queue[tuple[Any, ...] | None]) -> tuple[Any, ...]:
    """Queue the pages of one read; return its last event (end, cancelled, exit or error)."""
    pages = connector.read(stream, state)
    try:
        for page in pages:
            outbox.put(("page", [prepare(record) for record in page.records], page.state,
                        tuple(page.notes), page.full_refresh, connector.request_count))
            if commands.poll():
                command = commands.recv()[0]
                if command in ("cancel", "exit"):
                    return ("cancelled" if command == "cancel" else "exit", connector.request_count)
        return ("end", connector.request_count)
    except Exception as exc:  # noqa: BLE001 - the parent raises it where the stream is run
        return ("error", _portable(exc), connector.request_count)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()


def _send_all(outbox: queue.Queue[tuple[Any, ...] | None], events: Connection) -> None:
    while (event := outbox.get()) is not None:
        try:
            events.send(event)
        except (BrokenPipeError, OSError):   # the parent is gone: nobody will read what we read
            os._exit(0)


def _portable(exc: Exception) -> Exception:
    """`exc` with the child's traceback as a note, or a ConnectorError saying it if `exc` cannot be pickled."""
    trace = "".join(traceback.format_exception(exc)).rstrip()
    try:
        exc.add_note(f"raised in the reader process:\n{trace}")
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling is described instead
        return ConnectorError(f"{type(exc).__name__}: {exc}\nraised in the reader process:\n{trace}")


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
