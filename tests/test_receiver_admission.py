"""The in-flight byte budget on its own."""

from __future__ import annotations

import pytest

from agenttrail.receiver.admission import InflightBudget
from agenttrail.storage import Overloaded


def test_budget_admits_until_full_and_releases_on_exit_or_error():
    budget = InflightBudget(100)
    with budget.hold(60):
        with pytest.raises(Overloaded):
            with budget.hold(50):
                pass
        with budget.hold(40):
            assert budget.in_flight == 100
    with pytest.raises(RuntimeError):
        with budget.hold(30):
            raise RuntimeError("mapping failed")
    assert budget.in_flight == 0


def test_a_single_request_larger_than_the_budget_is_still_admitted():
    budget = InflightBudget(10)
    with budget.hold(1000):
        assert budget.in_flight == 1000


def test_budget_must_be_positive():
    with pytest.raises(ValueError):
        InflightBudget(0)
