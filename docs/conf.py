"""Sphinx configuration. Built in CI with warnings as errors: sphinx-build -W -b html docs docs/_build/html"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "sagefinetune"
author = "the sagefinetune developers"
copyright = "2026, " + author
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
html_theme = "alabaster"
html_static_path = ["_static"]
exclude_patterns = ["_build"]
nitpicky = False


def _hyperparameter_table() -> None:
    """docs/_generated/hyperparameters.rst from the entry point's own table, so the docs cannot drift."""
    from sagefinetune.entrypoint.contract import HYPERPARAMETERS
    from sagefinetune.plans.hyperparameters import DEFAULT_HYPERPARAMETERS, USER_HYPERPARAMETERS

    rows = []
    for name in USER_HYPERPARAMETERS:
        p = HYPERPARAMETERS[name]
        default = DEFAULT_HYPERPARAMETERS.get(name, p.default)
        rows.append(f"   * - ``{name}``\n     - ``{default!r}``\n     - {p.help}" + (f" ({p.rule})" if p.rule else ""))
    os.makedirs(os.path.join(os.path.dirname(__file__), "_generated"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "_generated", "hyperparameters.rst"), "w") as fh:
        fh.write(".. list-table::\n   :header-rows: 1\n   :widths: 25 15 60\n\n   * - name\n     - default\n     - meaning\n")
        fh.write("\n".join(rows) + "\n")


_hyperparameter_table()


def _hosting_table() -> None:
    """docs/_generated/hosting-prices.rst from sagefinetune.facts.hosting's dated table."""
    from sagefinetune.facts.hosting import HOSTING, PRICE_SOURCE

    rows = [f"   * - ``{i.name}``\n     - {i.gpus} x {i.gpu}" if i.gpus else f"   * - ``{i.name}``\n     - CPU"
            for i in HOSTING.values()]
    rows = [f"{row}\n     - ${i.price_per_hour:.3f}" for row, i in zip(rows, HOSTING.values())]
    with open(os.path.join(os.path.dirname(__file__), "_generated", "hosting-prices.rst"), "w") as fh:
        fh.write(f".. list-table:: {PRICE_SOURCE}\n   :header-rows: 1\n   :widths: 30 30 40\n\n"
                 "   * - instance\n     - GPUs\n     - USD per instance-hour\n")
        fh.write("\n".join(rows) + "\n")


_hosting_table()


def _estimate_tables() -> None:
    """docs/_generated/*: the leave-one-out table, GPU speeds and the AWS benchmark's summary, from the package's data."""
    sys.path.insert(0, os.path.dirname(__file__))
    import estimate_tables

    estimate_tables.write(os.path.join(os.path.dirname(__file__), "_generated"))


_estimate_tables()
