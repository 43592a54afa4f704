"""No number changes when the code is restructured: the golden record's short fixed-seed runs (S10, the
speedrun, ResNet-50 on an image folder, a range test, lr_sweep.py; tools/golden_record.py) give the
stored numbers bit for bit. The rounding depends on the machine: on another CPU or torch the test skips
and says so (write the record again there, before a change: python tools/golden_record.py write)."""
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import golden_record  # noqa: E402

STORED = json.loads(golden_record.RECORD.read_text())


@pytest.mark.parametrize("name", list(golden_record.RUNS))
def test_the_golden_runs_give_the_stored_numbers_bit_for_bit(name):
    variable = golden_record.RUNS[name][0]
    if not os.environ.get(variable):
        pytest.skip(f"set {variable} to the real data the record was written from")
    if STORED["machine"] != golden_record.machine():
        pytest.skip(f"the record was written on {STORED['machine']}, this is {golden_record.machine()}")
    found = golden_record.differences(STORED["runs"][name], golden_record.run(name))
    assert not found, f"{name} computes other numbers than the golden record:\n" + "\n".join(found[:20])


def test_a_changed_number_is_found_and_named():
    record = json.loads(json.dumps(STORED["runs"]["s10"]))
    record["history"]["lr"][2] += 1e-12
    assert golden_record.differences(STORED["runs"]["s10"], record) == [
        f".history.lr[2]: expected {STORED['runs']['s10']['history']['lr'][2]!r}, got {record['history']['lr'][2]!r}"]
