"""The label counts of a Dataset drawn as grouped bars (matplotlib, imported only here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagefinetune.core.deps import require

__all__ = ["draw_label_counts", "value_order"]


def value_order(value: Any) -> tuple[int, Any]:
    """Numbers in numeric order, then everything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def draw_label_counts(counts: dict[str, dict[Any, int]], path: str | Path | None, title: str) -> Any:
    """Grouped bars of ``{split: {label: rows}}``; saved to ``path`` (or shown when None). Returns the Figure."""
    require("matplotlib", "plot")
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = sorted({k for c in counts.values() for k in c}, key=value_order)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) * len(counts)), 3.5))
    width = 0.8 / max(1, len(counts))
    for i, (split, c) in enumerate(counts.items()):
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, [c.get(k, 0) for k in labels], width=width, label=f"{split} ({sum(c.values())})")
    ax.set_xticks([j + width * (len(counts) - 1) / 2 for j in range(len(labels))], [str(k) for k in labels])
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    else:
        plt.show()
    return fig
