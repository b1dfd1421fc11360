"""Console output for long work: one-line status messages and byte progress bars (tqdm), both off with progress=False."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sagefinetune.entrypoint.redaction import redact

__all__ = ["say", "upload_bar"]


def say(message: str, enabled: bool = True) -> None:
    """Print ``[sagefinetune] message`` to stderr when ``enabled``, with any secret in it masked."""
    if enabled:
        print(f"[sagefinetune] {redact(message)}", file=sys.stderr, flush=True)


@contextmanager
def upload_bar(desc: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A byte progress bar for an upload or download; yields the callback that advances it."""
    if not enabled:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, mininterval=0.5) as bar:
        yield bar.update
