"""A failed run says why in SageMaker's failure file (the job's FailureReason), not only in its log."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys

import pytest

from sagefinetune.entrypoint import channels, contract, outputs

ENTRYPOINT = os.path.join(os.path.dirname(outputs.__file__), "train.py")


@pytest.fixture
def failure(tmp_path, monkeypatch):
    path = tmp_path / "output" / "failure"
    monkeypatch.setenv("SM_OUTPUT_FAILURE", str(path))
    return path


@pytest.mark.parametrize("module", [outputs, contract])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_the_first_failure_is_kept_and_cut_to_sagemakers_limit(failure):
    outputs.write_failure(ValueError("x" * 5000))
    outputs.write_failure(RuntimeError("a second rank's collective error"))  # does not overwrite the cause
    assert failure.read_text() == "ValueError: " + "x" * (outputs.FAILURE_LIMIT - len("ValueError: "))


@pytest.mark.parametrize("exc", [SystemExit(0), SystemExit(None), KeyboardInterrupt()])
def test_a_clean_exit_or_ctrl_c_writes_nothing(failure, exc):
    outputs.write_failure(exc)
    assert not failure.exists()


def test_a_stale_failure_is_cleared_on_the_main_process_only(failure, monkeypatch):
    failure.parent.mkdir(parents=True)
    failure.write_text("an earlier attempt")
    monkeypatch.setenv("LOCAL_RANK", "1")
    outputs.clear_failure()
    assert failure.exists()
    monkeypatch.setenv("LOCAL_RANK", "0")
    outputs.clear_failure()
    assert not failure.exists()


def test_without_sm_output_failure_it_sits_beside_the_output_data(tmp_path, monkeypatch):
    monkeypatch.delenv("SM_OUTPUT_FAILURE", raising=False)
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "output" / "data"))
    assert outputs.failure_path() == str(tmp_path / "output" / "failure")


def test_the_entry_point_writes_its_reason_when_it_stops(failure, tmp_path):
    env = {**os.environ, "SM_OUTPUT_FAILURE": str(failure), "SM_INPUT_CONFIG_DIR": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, ENTRYPOINT, "--epochs", "0", "--labels", '["a","b"]'], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0
    assert failure.read_text() == "ValueError: hyperparameter epochs='0' must be in (0, 10000]"


@pytest.mark.parametrize("names, mapping, value, message", [
    (["bad", "good"], {"1": "bad", "5": "good"}, 3,
     "label value 3 in column 'stars' is not in the label map ['1', '5']. Fix: name it in .map_labels({3: "),
    (["bad", "good"], {}, "meh", "label 'meh' in column 'stars' is not one of ['bad', 'good']. Fix: "),
    (["bad", "good"], {}, 7, "label id 7 in column 'stars' is outside 0..1 (2 classes). Fix: "),
])
def test_a_label_the_map_does_not_name_is_reported_with_its_column_and_a_fix(names, mapping, value, message):
    with pytest.raises(ValueError) as err:
        channels.label_encoder(names, mapping, "stars")(value)
    assert str(err.value).startswith(message) and "remove the rows whose 'stars' is that value" in str(err.value)
