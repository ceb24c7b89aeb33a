"""The lens commands and records: bad input is one line and exit 2; records round-trip; the
analysed run carries its lenses and its LLC (DESIGN section 6)."""

import pytest

from groklab.analysis.lenses import read_lens_record
from groklab.records import Lenses, LLCSeries, from_json, to_json
from groklab.runs import Run


@pytest.mark.parametrize(
    "args",
    [
        ["llc", "{run}", "--steps", "1,x"],
        ["llc", "{run}", "--steps", "3"],  # no weights saved at step 3
        ["llc", "{run}", "--set", "train.steps=5"],  # only analysis.llc.* keys
        ["llc", "{run}", "--set", "analysis.llc.epsilon=-1"],
        ["llc-calibrate", "{run}", "--epsilons", "0,1e-4"],
        ["llc", "{missing}"],
    ],
)
def test_bad_lens_input_is_one_line_and_exit_2(args, analysed_run, tmp_path, cli):
    r = cli(*[a.format(run=analysed_run, missing=tmp_path / "nope") for a in args])
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_lens_records_round_trip_and_are_typed(analysed_run):
    run = Run.open(analysed_run)
    lenses, llc = run.analysis.lenses, read_lens_record(run, "llc")
    assert isinstance(lenses, Lenses) and isinstance(llc, LLCSeries)
    assert from_json(Lenses, to_json(lenses)) == lenses
    assert from_json(LLCSeries, to_json(llc)) == llc
    # AGOP at the first saved step (the baseline), the memorization and grokking steps and the last
    assert lenses.agop_steps[0] == run.steps[0] == 0 and lenses.agop_steps[-1] == run.steps[-1]
    assert lenses.agop_baseline == lenses.points[0].agop
    assert set(lenses.agop_sqrt) == set(lenses.agop_steps)
    assert llc.measured_on == "train" and len(llc.points) == 3
