"""The operator SIGKILLed at random moments during alias moves that include crashing and gate-failing
versions; the registry slow, then hanging, behind a proxy. Short variants (bench/chaos.py runs the long
ones); each prints its figures and the seed of its RNG."""

from __future__ import annotations

import pytest

from chaos.scenarios import SEED, operator_kills, registry_slow_then_hanging
from integration.helpers import Cluster, Models
from modelrelease.sandbox.stack import SandboxInfo
from operator_process import Operator

pytestmark = pytest.mark.slow


def test_operator_killed_during_alias_moves_loses_nothing_and_never_serves_an_unverified_version(
    chaos_cluster: Cluster, chaos_models: Models, operator: Operator
) -> None:
    figures = operator_kills(chaos_cluster, chaos_models, operator, moves=4, seed=SEED)
    print(figures.line())
    assert figures.converged == figures.releases, figures.line()
    assert (figures.history_lost, figures.history_duplicated) == (0, 0), figures.line()
    assert figures.unverified_served == 0, figures.line()


def test_a_slow_then_hanging_registry_is_reported_within_the_retry_bound_and_recovered_from(
    chaos_cluster: Cluster, chaos_models: Models, operator: Operator, sandbox: SandboxInfo
) -> None:
    figures = registry_slow_then_hanging(chaos_cluster, chaos_models, sandbox, seed=SEED)
    print(figures.line())
    assert figures.converged == figures.releases, figures.line()
    assert figures.unverified_served == 0, figures.line()  # the Deployment was not touched
    assert (figures.history_lost, figures.history_duplicated) == (0, 0), figures.line()
