"""The long chaos variants (tests/chaos runs the short ones): the operator SIGKILLed at random moments during
BENCH_CHAOS_MOVES (50) alias moves that include crashing and gate-failing versions; the registry slow,
then hanging; kube-apiserver and etcd restarted mid-rollout; MLflow restarted and the S3 endpoint down
after an alias move. One row of figures per scenario; the RNG's seed is CHAOS_SEED (printed)."""

from __future__ import annotations

import os
import time

from bench.common import Env, table
from chaos.scenarios import (
    SEED,
    Figures,
    component_restart,
    operator_kills,
    registry_slow_then_hanging,
    store_down,
)

MOVES = int(os.environ.get("BENCH_CHAOS_MOVES", "50"))


def run(env: Env) -> None:
    operator = env.operator()
    cluster, models, sandbox = env.cluster, env.models, env.sandbox
    print(f"chaos: seed {SEED}, {MOVES} alias moves", flush=True)
    results: list[tuple[Figures, float]] = []

    def timed(figures_of: object) -> None:
        began = time.monotonic()
        figures = figures_of()  # type: ignore[operator]
        results.append((figures, time.monotonic() - began))
        print(figures.line(), flush=True)

    timed(lambda: operator_kills(cluster, models, operator, moves=MOVES, seed=SEED))
    timed(lambda: registry_slow_then_hanging(cluster, models, sandbox, seed=SEED))
    for component, during in (("kube-apiserver", "rollout"), ("etcd", "rollout"), ("mlflow", "move")):
        timed(lambda c=component, d=during: component_restart(cluster, models, sandbox, c, SEED, during=d))
    timed(lambda: store_down(cluster, models, sandbox, SEED))
    rows = [
        [
            f.scenario,
            f.faults,
            f"{f.converged}/{f.releases}",
            f.history_lost,
            f.history_duplicated,
            f.unverified_served,
            f"{seconds:.0f}",
        ]
        for f, seconds in results
    ]
    headers = ["scenario", "faults", "converged", "lost", "duplicated", "unverified served", "s"]
    print(table(f"chaos (seed {SEED})", headers, rows))
    for figures, _ in results:
        for note in figures.notes:
            print(f"  {figures.scenario}: {note}")
