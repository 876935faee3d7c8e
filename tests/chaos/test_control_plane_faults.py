"""kube-apiserver restarted mid-rollout (its watch cache starts afresh: the operator's watches resume from
a resourceVersion it no longer has, 410 Gone), etcd restarted mid-rollout, MLflow restarted and the S3
endpoint down right after an alias move: the operator recovers unaided and converges. On a sandbox of
this module's own (conftest.own_stack)."""

from __future__ import annotations

import pytest

from chaos.scenarios import SEED, OwnStack, component_restart, store_down, watches_expire

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("component", "during"),
    [("kube-apiserver", "rollout"), ("etcd", "rollout"), ("mlflow", "move")],
)
def test_a_restarted_component_is_recovered_from(own_stack: OwnStack, component: str, during: str) -> None:
    figures = component_restart(
        own_stack.cluster, own_stack.models, own_stack.sandbox, component, SEED, during=during
    )
    print(figures.line())
    assert figures.converged == figures.releases, figures.line()
    assert (figures.history_lost, figures.history_duplicated) == (0, 0), figures.line()


def test_the_s3_endpoint_down_leaves_the_deployment_alone_and_is_recovered_from(own_stack: OwnStack) -> None:
    figures = store_down(own_stack.cluster, own_stack.models, own_stack.sandbox, SEED)
    print(figures.line())
    assert figures.converged == figures.releases, figures.line()
    assert figures.unverified_served == 0, figures.line()
    assert (figures.history_lost, figures.history_duplicated) == (0, 0), figures.line()


def test_watches_that_expire_are_listed_again_and_the_release_converges(own_stack: OwnStack) -> None:
    figures = watches_expire(own_stack, SEED)
    print(figures.line())
    assert figures.converged == figures.releases, figures.line()
    assert (figures.history_lost, figures.history_duplicated) == (0, 0), figures.line()
