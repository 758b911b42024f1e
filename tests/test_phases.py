import time

import pytest

from coconut.phases import PhaseClock


def test_phases_add_up_and_name_themselves():
    phases = PhaseClock()
    with phases("step"):
        time.sleep(0.02)
    with phases("step"):
        time.sleep(0.01)
    phases.add("setup", 1.5)
    before = dict(phases.seconds)
    with phases("collate"):
        time.sleep(0.01)
    assert phases.seconds["step"] == pytest.approx(0.03, abs=0.02) and phases.seconds["step"] >= 0.03
    assert phases.seconds["setup"] == 1.5
    assert set(phases.since(before)) == {"collate"}
    with pytest.raises(ValueError, match="unknown phase 'stepp'.*setup, data, collate"):
        with phases("stepp"):
            pass


def test_a_failing_phase_still_counts():
    phases = PhaseClock()
    with pytest.raises(KeyError):
        with phases("data"):
            time.sleep(0.01)
            raise KeyError("x")
    assert phases.seconds["data"] >= 0.01
