"""Durations as people read them (``45s``, ``12m30s``, ``3h05m``): one formatter for plans, estimates and searches."""

from __future__ import annotations

__all__ = ["human_seconds"]


def human_seconds(value: float | None) -> str:
    """``45s``, ``12m30s``, ``3h05m``.

    Example:
        >>> human_seconds(403.2), human_seconds(11_100), human_seconds(None)
        ('6m43s', '3h05m', '-')
    """
    if value is None:
        return "-"
    value = round(value)
    if value < 60:
        return f"{value}s"
    if value < 3600:
        return f"{value // 60}m{value % 60:02d}s"
    return f"{value // 3600}h{value % 3600 // 60:02d}m"
