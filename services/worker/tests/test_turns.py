"""Turns: the weighted round robin of the weighted priority mode (pure code)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conveyor_events.names import Priority
from conveyor_worker.intake import Turns
from conveyor_worker.settings import Settings

pytestmark = pytest.mark.unit

BOTH: tuple[Priority, ...] = ("high", "regular")


def test_both_queues_full_share_the_starts_by_weight_spread_out() -> None:
    turns = Turns({"high": 4, "regular": 1})
    picks = [turns.pick(BOTH) for _ in range(20)]

    assert picks.count("regular") == 4
    assert picks[:5].count("regular") == 1  # spread out, not four highs then a burst
    assert all(picks[i : i + 5].count("regular") == 1 for i in range(0, 20, 5))


def test_an_empty_queue_gives_its_share_away_and_saves_no_burst() -> None:
    turns = Turns({"high": 4, "regular": 1})
    assert [turns.pick(["high"]) for _ in range(50)] == ["high"] * 50
    picks = [turns.pick(BOTH) for _ in range(10)]

    assert picks.count("regular") == 2  # its weight's share, not 10 saved-up turns


def test_no_candidate_no_pick() -> None:
    assert Turns({"high": 4, "regular": 1}).pick([]) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("high=4", "no weight for regular"),
        ("urgent=2,regular=1", "'urgent=2' is not priority=weight"),
        ("high=0,regular=1", "the weight of high must be at least 1, not 0"),
        ("high=lots,regular=1", "the weight of high must be a whole number, not 'lots'"),
    ],
)
def test_a_bad_weights_setting_says_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("CONVEYOR_PRIORITY_WEIGHTS", value)
    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_weights_parse_and_unset_is_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_PRIORITY_WEIGHTS", " high=4, regular=1 ")
    assert Settings().priority_weights == {"high": 4, "regular": 1}
    monkeypatch.setenv("CONVEYOR_PRIORITY_WEIGHTS", "")
    assert Settings().priority_weights is None
