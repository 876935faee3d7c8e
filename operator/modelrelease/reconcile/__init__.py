"""Pure reconcile decisions: (spec, status, registry facts, observed Deployment) → a Plan."""

from modelrelease.reconcile.decide import Deploy, Event, Plan, decide, expected_pin, refused

__all__ = ["Deploy", "Event", "Plan", "decide", "expected_pin", "refused"]
