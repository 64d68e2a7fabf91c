"""A real hub process for the crash and worker tests (run as a subprocess, never imported by pytest).

    python -P tests/hub_process.py cli worker --id w1  # the churnhub CLI, with `worker` mounted
    python -P tests/hub_process.py crash-server        # JSON jobs on stdin, one forked hub per job

`crash-server` imports the hub once and forks a child per job, so a test can kill twenty hubs
in seconds. A job is one line of JSON:

    {"config": "/tmp/x/churnhub.yaml", "job": "sync" | "outbox", "kill_at": 17 | null,
     "clock_offset": 600, "requests": [[key, source, action_type, params, customer_id, variables], ...]}

The child counts the moments where a crash hurts most — just before each database COMMIT, just
before and just after each HTTP call and each SMTP send — and at moment number `kill_at` sends
itself SIGKILL: no `finally`, no rollback, no flush, exactly like `kill -9`. A child that gets to
the end prints `{"events": N, "result": ...}`. After each job the server prints
`{"pid": P, "exit": code, "signal": 9 | null}`.

`sync` is the sync engine of `churnhub sync` (without the processing steps after it), one
connector after another so that the order of moments is reproducible;
`outbox` is a playbook run: plan and enqueue the requests (duplicate keys are no-ops), then
execute due actions with the runner's clock `clock_offset` seconds ahead (so leases of a killed
predecessor have expired), as `churnhub actions run` does.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import sys
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, event


class KillSwitch:
    """Counts crash-worthy moments and SIGKILLs this process at moment `kill_at`."""

    def __init__(self, kill_at: int | None) -> None:
        self.kill_at = kill_at
        self.events = 0

    def moment(self, what: str) -> None:
        self.events += 1
        if self.kill_at is not None and self.events >= self.kill_at:
            sys.stderr.write(f"hub_process: SIGKILL at moment {self.events}: {what}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self) -> None:
        send_http = httpx.HTTPTransport.handle_request
        sendmail = smtplib.SMTP.sendmail

        def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            where = f"{request.method} {request.url.path}"
            self.moment(f"before {where}")
            response = send_http(transport, request)
            self.moment(f"after {where} answered {response.status_code}")   # not recorded yet
            return response

        def send(smtp: smtplib.SMTP, *args: Any, **kwargs: Any) -> Any:
            self.moment("before an SMTP send")
            answer = sendmail(smtp, *args, **kwargs)
            self.moment("after an SMTP send")     # accepted by the server, not recorded yet
            return answer

        httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
        smtplib.SMTP.sendmail = send  # type: ignore[method-assign]
        event.listen(Engine, "commit", lambda _connection: self.moment("before a database COMMIT"))


def run_job(job: dict[str, Any]) -> Any:
    from hub import outbox
    from hub.app import Hub
    from hub.models import utcnow
    from hub.sync import StreamSelection, SyncEngine

    hub = Hub.from_config(job["config"])
    hub.ensure_database()
    if job["job"] == "sync":
        runs = []
        for name in hub.settings.connectors:
            connector = hub.connector(name)
            try:
                runs.extend(run.status for run in SyncEngine(hub.engine).run(StreamSelection({name: connector})))
            finally:
                connector.close()
        return runs
    offset = timedelta(seconds=job.get("clock_offset", 0))

    def clock() -> Any:
        return utcnow() + offset

    requests = [outbox.ActionRequest(*item) for item in job.get("requests", [])]
    with hub.engine.begin() as connection:
        intents = outbox.planner_for(hub).plan(connection, requests, now=clock())
        outbox.enqueue(connection, intents, now=clock())
    report = outbox.runner_for(hub, clock=clock, worker="crash-test").drain()
    return report.counts()


def crash_server() -> None:
    from hub import outbox, sync  # noqa: F401 - import everything once, before forking
    from hub.app import discover_plugins

    discover_plugins()
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            switch = KillSwitch(job.get("kill_at"))
            switch.install()
            try:
                result = run_job(job)
                sys.stdout.write(json.dumps({"events": switch.events, "result": result}) + "\n")
                code = 0
            except BaseException as exc:  # noqa: BLE001 - report, then leave like a process does
                sys.stdout.write(json.dumps({"events": switch.events, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
                code = 1
            sys.stdout.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        sys.stdout.write(json.dumps({"pid": pid, "exit": code, "signal": killed}) + "\n")
        sys.stdout.flush()


def cli(args: list[str]) -> None:
    from hub import cli as hub_cli
    from hub.commands import worker_cmd

    if not any(command.name == "worker" for command in hub_cli.app.registered_commands):
        hub_cli.app.command("worker")(worker_cmd.worker)   # until hub/cli.py mounts it
    sys.argv = ["churnhub", *args]
    hub_cli.main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["crash-server"]:
        crash_server()
    elif sys.argv[1:2] == ["cli"]:
        cli(sys.argv[2:])
    else:
        sys.exit(__doc__)
