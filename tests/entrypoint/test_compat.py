"""The entry point on the transformers of the SageMaker V100 image (4.56.2), not only on the installed 5.x.

CI builds that environment (.ci/run) and names its Python in SFT_COMPAT_PYTHON; elsewhere this test is skipped (and
fails under CI=true: conftest.skip_or_fail).
"""

import json
import os
import subprocess

import pytest
from conftest import env_python

COMPAT = os.environ.get("SFT_COMPAT_PYTHON")

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def compat_python():
    """SFT_COMPAT_PYTHON: skipped where it is not set, a failure under CI=true."""
    return env_python("SFT_COMPAT_PYTHON")


def test_entry_point_trains_on_transformers_4_56(tf456_run):
    version = subprocess.run([COMPAT, "-c", "import transformers; print(transformers.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "4.56.2"
    run = tf456_run  # shared with tests/test_inference_container.py, which serves it on the inference image's stack
    assert "transformers 4.56.2" in run.log_path.read_text()
    assert run.metrics["train_global_step"] == 75 and run.metrics["eval_accuracy"] > 0.7
    config = json.loads((run.model_dir / "config.json").read_text())
    assert config["id2label"]["3"] == "sports" and config["problem_type"] == "single_label_classification"
    assert not any(p.name.startswith("checkpoint") for p in run.model_dir.iterdir())
