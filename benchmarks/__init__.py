"""churnhub benchmarks: the hub against the floor and a peer, every figure a ratio of the same run.

    python -m benchmarks --customers 10000 --only sync,noop
    make bench

See `benchmarks/__main__.py` for the flags and `docs/performance.md` for the findings.
"""
