"""Re-verification of what serves, as decided: the serving version's bytes hashed again set
Degraded=True ServingArtifactChanged (one Warning Event) when they are not the verified ones, leave the
Deployment alone, and clear when they match again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from modelrelease.pipeline import _reverify
from modelrelease.reconcile import Plan, decide
from modelrelease.reconcile.decide import Reverified
from modelrelease.registry.base import ModelVersion
from unit.test_checks import FakeRegistry
from unit.test_reconcile import PASS, Release, deployment, make_spec, mv, reasons

VERIFIED = "sha256:" + "ab" * 32
ALTERED = "sha256:" + "cd" * 32


def serving_verified(release: Release) -> None:
    release.step(mv(1), None, PASS, digest=VERIFIED)
    release.step(mv(1), deployment(1, "Succeeded"))
    assert release.status is not None and release.status.current is not None
    assert release.status.current.digest == VERIFIED


def reverify(release: Release, seen: Reverified | None) -> Plan:
    release.clock += timedelta(seconds=5)
    plan = decide(
        release.spec,
        1,
        release.status,
        mv(1),
        None,
        deployment(1, "Succeeded"),
        release.clock,
        reverified=seen,
    )
    release.server.write(plan)
    return plan


def degraded(release: Release) -> tuple[str, str, str]:
    assert release.status is not None
    found = next(c for c in release.status.conditions if c.type == "Degraded")
    return found.status, found.reason, found.message or ""


def test_matching_bytes_change_nothing() -> None:
    release = Release()
    serving_verified(release)
    plan = reverify(release, Reverified("1", VERIFIED))
    assert plan.deploy is None and reasons(plan) == []
    assert degraded(release)[:2] == ("False", "AsExpected")
    assert plan.status.phase == "Ready"


def test_altered_bytes_degrade_once_leave_the_deployment_and_clear_when_restored() -> None:
    release = Release()
    serving_verified(release)

    plan = reverify(release, Reverified("1", ALTERED))
    assert plan.deploy is None
    assert reasons(plan) == ["ServingArtifactChanged"] and plan.events[0].type == "Warning"
    status, reason, message = degraded(release)
    assert (status, reason) == ("True", "ServingArtifactChanged")
    assert message.startswith(f"version 1: its artifacts now hash to {ALTERED}, not the verified {VERIFIED}")
    assert plan.status.phase == "Degraded"
    assert plan.status.current is not None and plan.status.current.digest == VERIFIED  # what was verified

    assert reasons(reverify(release, Reverified("1", ALTERED))) == []  # one Event per change
    kept = reverify(release, None)  # the store did not answer this pass: the finding stands
    assert degraded(release) == (status, reason, message) and kept.deploy is None

    restored = reverify(release, Reverified("1", VERIFIED))
    assert restored.deploy is None and reasons(restored) == []
    assert degraded(release)[:2] == ("False", "AsExpected")
    assert restored.status.phase == "Ready"


def test_unreadable_bytes_say_why() -> None:
    release = Release()
    serving_verified(release)
    reverify(release, Reverified("1", None, "artifact not found in s3://b/x: NoSuchKey"))
    status, reason, message = degraded(release)
    assert (status, reason) == ("True", "ServingArtifactChanged")
    assert "can no longer be read (artifact not found in s3://b/x: NoSuchKey)" in message


def test_a_finding_about_another_version_or_an_unverified_one_is_ignored() -> None:
    release = Release()
    serving_verified(release)
    reverify(release, Reverified("2", ALTERED))
    assert degraded(release)[:2] == ("False", "AsExpected")

    unverified = Release()  # served without a digest (digest and signature checks off): nothing to compare
    unverified.step(mv(1), None, PASS)
    unverified.step(mv(1), deployment(1, "Succeeded"))
    reverify(unverified, Reverified("1", ALTERED))
    assert degraded(unverified)[:2] == ("False", "AsExpected")


def test_passes_come_at_least_every_reverify_interval() -> None:
    pinned = Release(make_spec(model={"name": "fraud", "version": "1"}, verify={"reverifyInterval": "45s"}))
    serving_verified(pinned)
    assert reverify(pinned, Reverified("1", VERIFIED)).requeue_after == 45.0
    following = Release(make_spec(registry={"pollInterval": "20s"}, verify={"reverifyInterval": "45s"}))
    serving_verified(following)
    assert reverify(following, Reverified("1", VERIFIED)).requeue_after == 20.0


@dataclass
class DescribingRegistry(FakeRegistry):
    """FakeRegistry that also describes versions, recording each one it is asked for."""

    described: list[str] = field(default_factory=list)

    async def get_version(self, name: str, version: str, *, max_age: float | None = None) -> ModelVersion:
        self.described.append(version)
        return mv(int(version), name)


async def test_the_serving_version_is_rehashed_from_the_passs_own_resolution() -> None:
    release = Release()
    serving_verified(release)
    registry = DescribingRegistry(digest=VERIFIED)
    seen = await _reverify(release.spec, registry, release.status, mv(1))
    assert seen == Reverified("1", VERIFIED)
    assert (registry.asked, registry.described) == (["digest 1"], [])  # no request beyond the alias's


async def test_after_an_alias_move_the_serving_version_is_described_by_the_registry() -> None:
    release = Release()
    serving_verified(release)
    registry = DescribingRegistry(digest=ALTERED)
    seen = await _reverify(release.spec, registry, release.status, mv(2))
    assert seen == Reverified("1", ALTERED)
    assert (registry.asked, registry.described) == (["digest 1"], ["1"])
