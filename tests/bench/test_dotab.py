"""The side-by-side DoT table (bench/dotab.py): the ratio is taken round by round (the two builds
of one round ran together, under the same machine), not as the ratio of the two medians, and the
lost queries are summed over the rounds."""
import os
import sys
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))

import dotab  # noqa: E402


def test_ratio_is_the_median_of_the_rounds_ratios():
    b = types.SimpleNamespace(versions={"dot-ab-before": "old"}, dot_ab={
        # Per round 0.5, 2.0 and 0.6: the median ratio is 0.6, while the columns' medians (60
        # and 50) would say 1.2.
        "dproxy-full": [(10.0, 0), (100.0, 1), (60.0, 0)],
        "before": [(20.0, 0), (50.0, 2), (100.0, 0)],
    })
    rows = [line for line in dotab.table(b).splitlines() if line.startswith("| DoT paced")]
    cpu = rows[0].split(" | ")
    assert cpu[2] == "60.00 (10.00–100.00)"
    assert cpu[3] == "50.00 (20.00–100.00)"
    assert cpu[4] == "0.600 (0.500–2.000) |"
    assert rows[1].split(" | ")[2:4] == ["1", "2"]


def test_no_table_without_the_phase():
    assert dotab.table(types.SimpleNamespace(versions={})) == ""
