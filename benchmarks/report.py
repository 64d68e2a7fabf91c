"""The verdict table: each figure next to its target, as a ratio of the same run where there is one.

    rows = verdicts(results)      # [{"item", "figure", "value", "target", "ratio", "met"}]
    print(render_table(results))
"""

from __future__ import annotations

from typing import Any

MEMORY_LIMIT_MB = 300
MEMORY_GROWTH_LIMIT = 1.25   # "does not grow with the world": the largest world's peak within 25 % of the smallest's
NOOP_SECONDS = 2.0
SCORE_SECONDS = 15.0
PLAYBOOK_SECONDS = 15.0
FLOOR_FACTOR = 1.5
PEER_FACTOR = 2.0


def _row(item: str, figure: str, value: str, target: str = "", ratio: float | None = None,
         met: bool | None = None) -> dict[str, Any]:
    return {"item": item, "figure": figure, "value": value, "target": target,
            "ratio": None if ratio is None else round(ratio, 3), "met": met}


def _rate(run: dict[str, Any]) -> float:
    return run["records"] / run["seconds"] if run.get("seconds") else 0.0


# A connector that logs in spends one request on it in its first stream (Salesforce's OAuth token).
LOGIN_REQUESTS = {"crm": 1}


def _requests_beyond_minimum(streams: dict[str, Any]) -> dict[str, int]:
    """Each stream's requests minus the one the API needs (and a login in a connector's first stream)."""
    beyond, seen = {}, set()
    for name, stream in streams.items():
        connector = name.split(".", 1)[0]
        allowed = 1 + (LOGIN_REQUESTS.get(connector, 0) if connector not in seen else 0)
        seen.add(connector)
        beyond[name] = max(0, stream["requests"] - allowed)
    return beyond


def sync_memory_mb(run: dict[str, Any]) -> float:
    """A sync's memory: its process's peak RSS or, when it forked reader processes, the sampled peak
    of all its processes' summed PSS (a shared page counted once), whichever is larger."""
    return max(run["peak_rss_mb"], run.get("tree_peak_pss_mb") or 0.0)


def _memory_text(run: dict[str, Any]) -> str:
    readers = run.get("reader_peak_rss_mb") or []
    if not readers:
        return f"peak RSS {run['peak_rss_mb']:.0f} MB"
    count = f"{len(readers)} reader process{'es' if len(readers) != 1 else ''}"
    return (f"memory {sync_memory_mb(run):.0f} MB (peak PSS of the sync and its {count}; "
            f"peak RSS {run['peak_rss_mb']:.0f} MB writer, {max(readers):.0f} MB largest reader)")


def _cpu_split(run: dict[str, Any]) -> str:
    """Where a sync's CPU went: its reader processes, and the writer (the rest of the tree)."""
    readers = sum(run.get("reader_cpu_seconds") or [])
    if not readers:
        return ""
    return f"; readers {readers:.1f} s, writer {run['cpu_seconds'] - readers:.1f} s"


def _sync_rows(sync: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    if "error" in sync:
        return [_row("1 sync", "failed", sync["error"])]
    size = f"{sync['customers']:,} customers, {', '.join(sync['systems'])}"
    ours = sync["sync_sqlite"]
    rows.append(_row("1 sync", f"churnhub -> SQLite ({size})",
                     f"{ours['seconds']:.1f} s, {ours['records']:,} records, {_rate(ours):,.0f} rec/s, "
                     f"{ours['requests']:,} requests, {_memory_text(ours)}"))
    floor = sync.get("floor")
    if floor:
        ratio = ours["seconds"] / floor["seconds"]
        rows.append(_row("1 sync", "floor (httpx + JSON, no storing)",
                         f"{floor['seconds']:.1f} s, {floor['records']:,} objects, {_rate(floor):,.0f} obj/s, "
                         f"{floor['requests']:,} requests, peak RSS {floor['peak_rss_mb']:.0f} MB"))
        rows.append(_row("1 sync", "churnhub SQLite / floor", f"{ratio:.2f}x", f"<= {FLOOR_FACTOR}x", ratio,
                         ratio <= FLOOR_FACTOR))
        if ours.get("cpu_seconds") and floor.get("cpu_seconds"):   # why the ratio is what it is
            per_record = 1e6 * ours["cpu_seconds"] / ours["records"]
            per_object = 1e6 * floor["cpu_seconds"] / floor["records"]
            rows.append(_row("1 sync", "CPU per record: churnhub / floor",
                             f"{per_record:.0f} / {per_object:.0f} us ({ours['cpu_seconds']:.1f} / "
                             f"{floor['cpu_seconds']:.1f} s CPU{_cpu_split(ours)})"))
        busiest = max(floor.get("sandbox_busiest_share") or 0, ours.get("sandbox_busiest_share") or 0)
        rows.append(_row("1 sync", "sandbox CPU / wall (busiest sandbox, floor or sync)", f"{busiest:.0%}",
                         "< 90% (else sandbox-bound)", busiest, busiest < 0.9))
    postgres = sync.get("sync_postgres")
    if postgres and "seconds" in postgres:
        text = f"{postgres['seconds']:.1f} s, {_rate(postgres):,.0f} rec/s, {_memory_text(postgres)}"
        rows.append(_row("1 sync", "churnhub -> PostgreSQL", text))
        if floor:
            ratio = postgres["seconds"] / floor["seconds"]
            rows.append(_row("1 sync", "churnhub PostgreSQL / floor", f"{ratio:.2f}x", "(no target)", ratio))
    process = sync.get("process")
    if process and "steps" in process:
        steps = ", ".join(f"{name} {step['seconds']:.1f} s" for name, step in process["steps"].items())
        whole = ours["seconds"] + process["seconds"]
        text = f"{process['seconds']:.1f} s ({steps}); sync share of sync + processing {ours['seconds'] / whole:.0%}"
        if floor:
            text += f"; (sync + processing) / floor {whole / floor['seconds']:.2f}x"
        rows.append(_row("1 sync", "processing after the sync", text))
    peer = sync.get("peer_dlt")
    if peer is not None:
        if "skipped" in peer or "error" in peer:
            rows.append(_row("2 peer", "dlt rest_api -> SQLite", f"not measured: {peer.get('skipped') or peer['error']}"))
        else:
            ratio = peer["seconds"] / ours["seconds"]
            steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in (peer.get("step_seconds") or {}).items())
            rows.append(_row("2 peer", "dlt rest_api -> SQLite",
                             f"{peer['seconds']:.1f} s ({steps}), {peer['records']:,} rows, "
                             f"peak RSS {peer['peak_rss_mb']:.0f} MB"))
            rows.append(_row("2 peer", "dlt / churnhub", f"{ratio:.2f}x", f">= {PEER_FACTOR}x", ratio, ratio >= PEER_FACTOR))
    noop = sync.get("noop")
    if noop:
        beyond = _requests_beyond_minimum(noop["streams"])
        total = sum(s["requests"] for s in noop["streams"].values())
        worst = max(beyond.values(), default=0)
        rows.append(_row("4 no-op", "requests per stream beyond the API minimum (max)",
                         f"{worst} ({total} requests for {len(beyond)} streams, {noop['records']} records)",
                         "0 (1 per stream; + the OAuth token for Salesforce)", float(worst),
                         worst == 0 and noop["records"] == 0))
        rows.append(_row("4 no-op", "second sync (SyncEngine)", f"{noop['seconds']:.2f} s "
                         f"({noop['wall_seconds']:.1f} s with process start)", f"<= {NOOP_SECONDS:.0f} s",
                         noop["seconds"] / NOOP_SECONDS, noop["seconds"] <= NOOP_SECONDS))
    return rows


def _memory_rows(memory: dict[str, Any]) -> list[dict[str, Any]]:
    rows, peaks = [], {}
    for size, figures in memory.items():
        if "error" in figures:
            rows.append(_row("3 memory", f"{int(size):,} customers", f"failed: {figures['error']}"))
            continue
        run = figures["sync_sqlite"]
        peak = peaks[int(size)] = sync_memory_mb(run)
        rows.append(_row("3 memory", f"memory, sync of {int(size):,} customers ({run['records']:,} records)",
                         _memory_text(run), f"<= {MEMORY_LIMIT_MB} MB", peak / MEMORY_LIMIT_MB,
                         peak <= MEMORY_LIMIT_MB))
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        growth = peaks[large] / peaks[small]
        rows.append(_row("3 memory", f"memory {large:,} / {small:,} customers", f"{growth:.2f}x",
                         f"<= {MEMORY_GROWTH_LIMIT}x (flat)", growth, growth <= MEMORY_GROWTH_LIMIT))
    return rows


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if "sync" in results:
        rows += _sync_rows(results["sync"])
    if "memory" in results:
        rows += _memory_rows(results["memory"])
    score = results.get("score")
    if score is not None:
        if "error" in score:
            rows.append(_row("5 score", "scoring + classification", f"failed: {score['error']}"))
        else:
            rows.append(_row("5 score", f"score + classify {score['customers']:,} customers in memory",
                             f"{score['seconds']:.1f} s (score {score['score_seconds']:.1f} s, classify "
                             f"{score['classify_seconds']:.1f} s)", f"<= {SCORE_SECONDS:.0f} s",
                             score["seconds"] / SCORE_SECONDS, score["seconds"] <= SCORE_SECONDS))
            rows.append(_row("5 score", "loading facts from SQLite (not in the figure above)",
                             f"{score['base_load_seconds_per_1k']:.2f} s per 1,000 customers "
                             f"(measured on {score['base_customers']:,})"))
    playbooks = results.get("playbooks")
    if playbooks is not None:
        if "seconds" not in playbooks:
            rows.append(_row("6 playbooks", "plan over customers with 10 playbooks",
                             f"not measured: {playbooks.get('skipped') or playbooks.get('error')}"))
        else:
            rows.append(_row("6 playbooks", f"plan {playbooks['customers']:,} customers x {playbooks['playbooks']} playbooks",
                             f"{playbooks['seconds']:.1f} s ({playbooks['entrants']:,} entrants)",
                             f"<= {PLAYBOOK_SECONDS:.0f} s", playbooks["seconds"] / PLAYBOOK_SECONDS,
                             playbooks["seconds"] <= PLAYBOOK_SECONDS))
    return rows


def render_table(results: dict[str, Any]) -> str:
    rows = results.get("verdicts") or verdicts(results)
    header = ("item", "figure", "value", "target", "verdict")
    lines = [(r["item"], r["figure"], r["value"], r["target"],
              "" if r["met"] is None else ("met" if r["met"] else "MISSED")) for r in rows]
    widths = [max(len(header[i]), *(len(str(line[i])) for line in lines)) if lines else len(header[i])
              for i in range(len(header))]
    widths[2] = min(widths[2], 90)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def render_markdown(results: dict[str, Any]) -> str:
    """The verdict table as Markdown (for docs/performance.md)."""
    rows = results.get("verdicts") or verdicts(results)
    out = ["| item | figure | value | target | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        verdict = "" if r["met"] is None else ("met" if r["met"] else "**missed**")
        out.append(f"| {r['item']} | {r['figure']} | {r['value']} | {r['target']} | {verdict} |")
    return "\n".join(out)
