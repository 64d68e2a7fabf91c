"""Reading connectors in a process of their own, beside the writer.

A sync is CPU-bound: HTTP, JSON parsing, mapping and preparing each record (its canonical JSON
and checksum) cost more than writing it, and the threads of one process share one GIL. A
`ReaderProcess` is a forked child that reads one or more connectors, each in a thread of its own,
and sends each page with its records already prepared (`hub.prepared`). The parent stays the only
writer and commits batches with their page state exactly as it does for pages read in a thread, so
the guarantees hold: a reader commits nothing, and pages it read that the writer did not commit
are read again next time.

    reader = ReaderProcess({"billing": stripe, "crm": salesforce})
    try:
        for page in reader.source("billing").read("invoices", state): ...
    finally:
        reader.close()

The child is forked, so it starts in milliseconds with the configured connectors and their
imports. Each connector may send at most `AHEAD_RECORDS` records ahead of the writer (the writer
acknowledges each page it takes), which bounds the memory of both sides and lets a reader go on
while the writer commits. When the writer takes nothing for a while (it is merging a first load),
the reader goes on reading into a spool, a temporary file of up to `SPOOL_RECORDS` packed records,
and sends from it first as the writer catches up. The child ignores SIGINT
and SIGTERM: the parent decides when to stop (it cancels the read), and the child exits when told
to, or when its command pipe closes because the parent is gone.
"""

from __future__ import annotations

import collections
import ctypes
import multiprocessing
import os
import pickle
import queue
import resource
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from hub.connector import Connector
from hub.errors import ConnectorError
from hub.prepared import PreparedRecord, prepare

AHEAD_RECORDS = 3000  # records a connector may be read ahead of the writer: a commit batch and a half
CLOSE_SECONDS = 10.0  # how long the child may take to finish its pages and exit before it is killed
TRIM_SECONDS = 0.5    # how often each side gives freed heap pages back to the system
# The child's connector threads share one GIL: a thread whose response has arrived waits for the
# running one to let go, 5 ms by default, and with three connectors that wait was paid on most pages.
SWITCH_SECONDS = 0.001
SPOOL_RECORDS = 250_000   # records a connector may read beyond AHEAD_RECORDS, spooled to a temporary file


@dataclass(frozen=True, slots=True)
class PreparedPage:
    """A `Page` whose records were prepared by the reader: same state, notes and restart flag."""

    records: Sequence[PreparedRecord]
    state: Mapping[str, Any] | None
    notes: Sequence[str] = ()
    full_refresh: bool = False


def place_connectors(weights: Mapping[str, float], processes: int) -> list[list[str]]:
    """The connectors each of at most `processes` reader processes reads; the rest are read in
    threads of the writer's own process.

    The writer's process reads too: SQLite releases the GIL while it writes, so that process has
    room, and a reader process's connector threads share one GIL. The heaviest connector goes
    first, each onto the least loaded process (reader processes first on a tie; ties between
    connectors keep their order). On two CPUs (one reader process) a 10,000-customer sync with
    Stripe in the reader process and Salesforce and Zendesk in the writer's took 16.0-16.3 s,
    against 17.1-19.5 s with all three in the reader process, in paired runs.
    """
    loads = [0.0] * (processes + 1)   # the last is the writer's process
    placed: list[list[str]] = [[] for _ in loads]
    for name in sorted(weights, key=lambda n: -weights[n]):
        least = min(range(len(loads)), key=lambda i: loads[i])
        loads[least] += weights[name]
        placed[least].append(name)
    return [names for names in placed[:-1] if names]


def supported() -> bool:
    """Reader processes are forked: Linux only (elsewhere fork is unsafe or missing; threads then)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


class HeapTrimmer:
    """Gives the pages glibc's malloc keeps after `free` back to the system, at most every TRIM_SECONDS.

    Pages pass between threads on both sides (read by one, pickled, unpickled by another, freed by
    a third), and glibc keeps the freed memory in each thread's arena: measured on a 10,000-customer
    sync, trimming took the writer and its readers from 350 to 280 MB of summed PSS.
    """

    def __init__(self) -> None:
        # the symbols already loaded (no library search: that would run ldconfig in a subprocess)
        self._trim = getattr(ctypes.CDLL(None), "malloc_trim", None)   # glibc only: elsewhere a no-op
        self._next = 0.0

    def maybe(self) -> None:
        now = time.monotonic()
        if self._trim is not None and now >= self._next:
            self._next = now + TRIM_SECONDS
            self._trim(0)


class ReaderProcess:
    """Some connectors' reads in a forked child: one stream at a time per connector, connectors at once."""

    def __init__(self, connectors: Mapping[str, Connector], *, listen: bool = True) -> None:
        """Fork the child; with `listen=False` its events are not read until `listen()` (a caller
        forking several keeps its threads for after the last fork)."""
        self.names = list(connectors)
        self.peak_rss_mb: float | None = None   # the child's own peak, reported when it exits
        self.cpu_seconds: float | None = None   # the child's own CPU time (user + system), likewise
        self._sources = {name: ReaderSource(self, name, c.request_count) for name, c in connectors.items()}
        self._sending = threading.Lock()          # engine threads share the command pipe
        context = multiprocessing.get_context("fork")
        commands_in, self._commands = context.Pipe(duplex=False)
        self._events, events_out = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve, args=(dict(connectors), commands_in, events_out, (self._commands, self._events)),
            name=f"churnhub-reader-{'-'.join(self.names)}", daemon=True)
        self._process.start()
        commands_in.close()
        events_out.close()
        self._dispatcher = threading.Thread(target=self._dispatch, name="churnhub-reader-events", daemon=True)
        if listen:
            self.listen()

    def listen(self) -> None:
        """Start routing the child's events to its sources (a thread of this process)."""
        self._dispatcher.start()

    def source(self, name: str) -> ReaderSource:
        """What the sync engine reads connector `name` from."""
        return self._sources[name]

    def close(self) -> None:
        """Ask the child to exit, wait for it (killing it after CLOSE_SECONDS), keep its peak RSS."""
        try:
            self.send(("exit",))
        except OSError:
            pass
        self._process.join(CLOSE_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        if self._dispatcher.is_alive():
            self._dispatcher.join(CLOSE_SECONDS)
        self._commands.close()
        self._events.close()

    def send(self, command: tuple[Any, ...]) -> None:
        with self._sending:
            self._commands.send(command)

    def _dispatch(self) -> None:
        """Route the child's events to the source they belong to, until the child is gone."""
        trimmer = HeapTrimmer()
        while True:
            try:
                event: tuple[Any, ...] = self._events.recv()
            except (EOFError, OSError):
                break
            trimmer.maybe()
            if event[1] == "exited":
                self.peak_rss_mb, self.cpu_seconds = event[2], event[3]
            else:
                self._sources[event[0]].events.put(event[1:])
        for source in self._sources.values():
            source.events.put(("dead",))

    def why_dead(self) -> str:
        self._process.join(1.0)
        return f"its reader process exited unexpectedly (exit code {self._process.exitcode})"


class ReaderSource:
    """One connector of a ReaderProcess, read like the connector itself (`read`, `request_count`)."""

    def __init__(self, process: ReaderProcess, name: str, requests: int) -> None:
        self.process, self.name = process, name
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()   # bounded by AHEAD_RECORDS in the child
        self._requests = requests
        self._pending = False      # a read was cancelled: its last events are still to come
        self._read = 0             # sequence number of the current read: commands name the read they mean

    @property
    def request_count(self) -> int:
        """HTTP requests the connector has made in the child so far."""
        return self._requests

    def read(self, stream: str, state: Mapping[str, Any] | None) -> Iterator[PreparedPage]:
        """The pages of `stream` after `state`; closing this iterator early cancels the read."""
        self._settle()
        self._read += 1
        self._command("read", stream, state)
        finished = False
        try:
            while True:
                event = self._next()
                if event[0] == "dead":
                    finished = True
                    raise ConnectorError(f"{self.name}: {self.process.why_dead()}")
                self._requests = event[-1]
                if event[0] == "page":
                    self._command("ack", len(event[1]))
                    yield PreparedPage(event[1], event[2], event[3], event[4])
                    continue
                finished = True
                if event[0] == "error":
                    raise event[1]
                return
        finally:
            if not finished:   # do not wait for the page in flight: the next read drains it
                try:
                    self._command("cancel")
                    self._pending = True
                except ConnectorError:   # the child is gone; the next read reports it
                    pass

    def _command(self, *command: Any) -> None:
        try:
            self.process.send((command[0], self.name, self._read, *command[1:]))
        except OSError:
            raise ConnectorError(f"{self.name}: {self.process.why_dead()}") from None

    def _next(self) -> tuple[Any, ...]:
        event = self.events.get()
        if event[0] == "dead":
            self.events.put(event)   # every later read sees it too
        return event

    def _settle(self) -> None:
        """Discard what a cancelled read still sends, up to its last event."""
        while self._pending:
            event = self._next()
            self._pending = event[0] == "page"
            if event[0] != "dead":
                self._requests = event[-1]


# --- in the child ------------------------------------------------------------------------------

class _Outbox:
    """The child's event pipe, shared by its connector threads; events are pickled by their thread."""

    def __init__(self, events: Connection) -> None:
        self.events = events
        self.lock = threading.Lock()
        self.trimmer = HeapTrimmer()

    @staticmethod
    def pack(*event: Any) -> bytes:
        return pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)

    def send(self, *event: Any) -> None:
        self.send_packed(self.pack(*event))

    def send_packed(self, payload: bytes) -> None:
        with self.lock:
            self.trimmer.maybe()
            try:
                self.events.send_bytes(payload)
            except (BrokenPipeError, OSError):   # the parent is gone: nobody will read what we read
                os._exit(0)


class _Spool:
    """Pages read beyond the credit, packed, in order, in an unnamed temporary file.

    The writer stops taking pages while it merges a first load (seconds at a time); the reader
    goes on reading into the spool instead of waiting, and memory stays bounded. Nothing here is
    durable, nor needs to be: a page the writer did not commit is read again by the next sync.
    """

    def __init__(self) -> None:
        self._file: Any = None
        self._pages: collections.deque[tuple[int, int]] = collections.deque()   # (bytes, records)
        self._read_at = self._write_at = 0
        self.records = 0

    def __bool__(self) -> bool:
        return bool(self._pages)

    def append(self, payload: bytes, records: int) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="churnhub-spool-")
        os.pwrite(self._file.fileno(), payload, self._write_at)
        self._write_at += len(payload)
        self._pages.append((len(payload), records))
        self.records += records

    def first_records(self) -> int:
        return self._pages[0][1]

    def pop(self) -> bytes:
        size, records = self._pages.popleft()
        payload = os.pread(self._file.fileno(), size, self._read_at)
        self._read_at += size
        self.records -= records
        if not self._pages:   # empty again: start the file over rather than let it grow
            self._file.truncate(0)
            self._read_at = self._write_at = 0
        return payload

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Cancelled(Exception):
    """The parent cancelled the read."""


class _Credit:
    """Records of one read sent but not yet taken by the writer; a page waits while AHEAD_RECORDS are out."""

    def __init__(self, read: int) -> None:
        self.read = read
        self.out = 0
        self.cancelled = False
        self.changed = threading.Condition()

    def take(self, records: int, *, wait: bool = True) -> bool:
        """Take room for a page (one always fits once nothing is out), waiting for it unless `wait`
        is False; raises _Cancelled once the read is cancelled."""
        with self.changed:
            if wait:
                self.changed.wait_for(lambda: self.cancelled or self.out < AHEAD_RECORDS)
            if self.cancelled:
                raise _Cancelled
            if self.out >= AHEAD_RECORDS:
                return False
            self.out += records
            return True

    def give(self, records: int) -> None:
        with self.changed:
            self.out -= records
            self.changed.notify()

    def cancel(self) -> None:
        with self.changed:
            self.cancelled = True
            self.changed.notify()


class _ConnectorThread:
    """Reads one connector in the child: one stream at a time, at most AHEAD_RECORDS unacknowledged
    (and up to SPOOL_RECORDS more spooled).

    Reads are numbered by the parent, and an acknowledgement or a cancel names its read: one that
    arrives after its read ended must not touch the next (a cancel would end it as if it were empty).
    """

    def __init__(self, name: str, connector: Connector, outbox: _Outbox) -> None:
        self.name, self.connector, self.outbox = name, connector, outbox
        self.reads: queue.Queue[tuple[int, str, Mapping[str, Any] | None] | None] = queue.Queue()
        self.lock = threading.Lock()
        self.credit = _Credit(0)
        self.cancelled_read = 0     # the newest read the parent cancelled, started or not
        self.thread = threading.Thread(target=self.run, name=f"read-{name}", daemon=True)
        self.thread.start()

    def acknowledge(self, read: int, records: int) -> None:
        with self.lock:
            credit = self.credit
        if credit.read == read:
            credit.give(records)

    def cancel(self, read: int) -> None:
        with self.lock:
            self.cancelled_read = max(self.cancelled_read, read)
            credit = self.credit
        if credit.read <= read:
            credit.cancel()

    def cancel_all(self) -> None:
        self.cancel(sys.maxsize)

    def run(self) -> None:
        while (read := self.reads.get()) is not None:
            number, stream, state = read
            with self.lock:
                self.credit = _Credit(number)
                if self.cancelled_read >= number:
                    self.credit.cancel()
            self.outbox.send(self.name, *self.read(stream, state))
        self.connector.close()

    def read(self, stream: str, state: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """Send the pages of one read (spooling what the credit has no room for); return its last event."""
        connector = self.connector
        pages = connector.read(stream, state)
        spool = _Spool()
        try:
            try:
                for page in pages:
                    payload = self.outbox.pack(self.name, "page", [prepare(record) for record in page.records],
                                               page.state, tuple(page.notes), page.full_refresh,
                                               connector.request_count)
                    self._offer(spool, payload, len(page.records))
                ending: tuple[Any, ...] = ("end", connector.request_count)
            except _Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - the parent raises it where the stream is run
                ending = ("error", _portable(exc), connector.request_count)
            self._drain(spool, wait=True)   # every page read goes before the read's last event
            return ending
        except _Cancelled:
            return ("cancelled", connector.request_count)
        finally:
            spool.close()
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def _offer(self, spool: _Spool, payload: bytes, records: int) -> None:
        """Send a page if the credit has room and nothing waits before it, else spool it."""
        self._drain(spool, wait=False)
        if not spool and self.credit.take(records, wait=False):
            self.outbox.send_packed(payload)
            return
        while spool.records >= SPOOL_RECORDS:   # the spool is full too: wait for the writer
            self._send_first(spool, wait=True)
        spool.append(payload, records)

    def _drain(self, spool: _Spool, *, wait: bool) -> None:
        while spool and self._send_first(spool, wait=wait):
            pass

    def _send_first(self, spool: _Spool, *, wait: bool) -> bool:
        if not self.credit.take(spool.first_records(), wait=wait):
            return False
        self.outbox.send_packed(spool.pop())
        return True


def _serve(connectors: dict[str, Connector], commands: Connection, events: Connection,
           parent_ends: tuple[Connection, ...]) -> None:
    """The child's command loop; the reading happens in one thread per connector."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.setswitchinterval(SWITCH_SECONDS)
    for end in parent_ends:   # so that the parent closing its ends reaches us as end-of-file
        end.close()
    outbox = _Outbox(events)
    threads = {name: _ConnectorThread(name, connector, outbox) for name, connector in connectors.items()}
    try:
        while True:
            try:
                command = commands.recv()
            except (EOFError, OSError):
                return
            if command[0] == "exit":
                break
            reader, number = threads[command[1]], command[2]
            if command[0] == "read":
                reader.reads.put((number, command[3], command[4]))
            elif command[0] == "ack":
                reader.acknowledge(number, command[3])
            elif command[0] == "cancel":
                reader.cancel(number)
    finally:
        for reader in threads.values():
            reader.cancel_all()
            reader.reads.put(None)
        for reader in threads.values():
            reader.thread.join(CLOSE_SECONDS)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    outbox.send(None, "exited", _peak_rss_mb(), usage.ru_utime + usage.ru_stime)


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
