"""Who enters which playbook: segment and trigger evaluated over every customer at once.

    signals = SignalTable(load_inputs(connection, table, as_of), as_of)
    for entrant in entrants(playbook, signals):      # customers whose segment and trigger hold
        entrant.values                               # {"tickets_opened(7)": 3, ...}: why they entered

No per-customer query: the trigger is one numpy expression over columns; only the entrants'
values are read out, to explain them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hub.expressions import Node, evaluate, signals_in
from hub.playbooks.config import PlaybookConfig
from hub.playbooks.signals import SignalTable, json_value


@dataclass(frozen=True)
class Entrant:
    playbook: str
    customer_id: str
    index: int                      # the customer's row in the signal table
    values: dict[str, Any]          # each signal the trigger (and segment) read, by key


def truth(node: Node, signals: SignalTable) -> np.ndarray:
    """A boolean column: `node` for every customer (a scalar result is broadcast)."""
    result = np.asarray(evaluate(node, signals.column, signals.n))
    if result.dtype != bool:
        result = np.nan_to_num(result.astype(float), nan=0.0) != 0
    return np.broadcast_to(result, (signals.n,)).copy()


def number(node: Node, signals: SignalTable) -> np.ndarray:
    """A numeric column (booleans become 1/0, missing NaN): metrics."""
    result = np.asarray(evaluate(node, signals.column, signals.n))
    if result.dtype.kind not in "fiub":   # text: a number where it reads as one, else missing
        result = np.array([_float(v) for v in result.ravel()], dtype=float)
    return np.broadcast_to(result.astype(float), (signals.n,)).copy()


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def matching(playbook: PlaybookConfig, signals: SignalTable) -> np.ndarray:
    """Customers whose segment (if any) and trigger hold."""
    mask = truth(playbook.trigger_ast, signals)
    if playbook.segment_ast is not None:
        mask &= truth(playbook.segment_ast, signals)
    return mask


def explained_signals(playbook: PlaybookConfig) -> list[Any]:
    found = signals_in(playbook.trigger_ast) + (signals_in(playbook.segment_ast) if playbook.segment_ast else [])
    unique: dict[str, Any] = {}
    for signal in found:
        unique.setdefault(signal.key, signal)
    return list(unique.values())


def entrants(playbook: PlaybookConfig, signals: SignalTable) -> list[Entrant]:
    """Every customer matching `playbook` now, with the values that made them match."""
    rows = np.nonzero(matching(playbook, signals))[0]
    columns = [(s.key, signals.column(s)) for s in explained_signals(playbook)]
    ids = signals.table.ids
    return [Entrant(playbook.name, str(ids[i]), int(i), {key: json_value(column[i]) for key, column in columns})
            for i in rows.tolist()]


__all__ = ["Entrant", "entrants", "matching", "number", "truth"]
