"""The examples in the docstrings of the pure modules run."""

import doctest

import pytest

import sagefinetune.dataset
import sagefinetune.hub
import sagefinetune.job
import sagefinetune.labels


@pytest.mark.parametrize("module", [sagefinetune.labels, sagefinetune.dataset, sagefinetune.job, sagefinetune.hub])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"Dataset": sagefinetune.Dataset, "Job": sagefinetune.Job,
                                                  "LabelMap": sagefinetune.LabelMap})
    assert result.attempted > 0 and result.failed == 0
