"""The examples in the docstrings of the pure modules run."""

import doctest

import pytest

import sagefinetune.data.dataset
import sagefinetune.data.labels
import sagefinetune.entrypoint.redaction
import sagefinetune.entrypoint.serving_choice
import sagefinetune.hub.push
import sagefinetune.job
import sagefinetune.plans.training


@pytest.mark.parametrize("module", [sagefinetune.data.labels, sagefinetune.data.dataset, sagefinetune.job, sagefinetune.hub.push,
                                    sagefinetune.entrypoint.redaction, sagefinetune.plans.training,
                                    sagefinetune.entrypoint.serving_choice])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"Dataset": sagefinetune.Dataset, "Job": sagefinetune.Job,
                                                  "LabelMap": sagefinetune.LabelMap})
    assert result.attempted > 0 and result.failed == 0
