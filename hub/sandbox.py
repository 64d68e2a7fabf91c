"""Serving a sandbox (a local emulator of an API) on 127.0.0.1 from a background thread.

Every connector's sandbox is an ASGI app (Starlette); `serve_in_thread` runs it with uvicorn on
a free loopback port and returns a handle with the base URL and `stop()`.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from hub.faults import FaultInjector, FaultLog, FaultProfile


class AdjustableClock:
    """Wall-clock time plus an offset that `advance` moves (the default sandbox clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class RunningServer:
    url: str
    host: str
    port: int
    _server: Any                      # a uvicorn.Server
    _thread: threading.Thread
    faults: FaultLog | None = None

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int = 0,
                    name: str = "sandbox", faults: FaultProfile | None = None) -> RunningServer:
    """Start `app` on host:port (0 = a free port) and wait until it accepts connections.

    With `faults`, every request passes through a `FaultInjector` first (`RunningServer.faults`
    then holds its log).
    """
    port = port or free_port(host)
    injector = FaultInjector(app, faults) if faults is not None and faults.active else None
    app = injector or app
    import uvicorn  # here, not at import: `hub` is imported by every process, few serve anything

    class ThreadServer(uvicorn.Server):
        def install_signal_handlers(self) -> None:  # the main thread owns signals
            pass

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_keep_alive=30)
    server = ThreadServer(config)
    thread = threading.Thread(target=server.run, name=f"{name}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} sandbox failed to start on {host}:{port}")
        time.sleep(0.01)
    return RunningServer(f"http://{host}:{port}", host, port, server, thread,
                         injector.log if injector else None)
