"""Saving matplotlib figures as real PNG files in a run's workdir (Agg backend, no display)."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def new_figure(ncols: int = 1, nrows: int = 1, *, size: tuple[float, float] = (5.0, 3.6)):
    """Returns ``(fig, axes)`` with a consistent size per panel."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    return fig, axes if axes.size > 1 else axes[0, 0]


def save_figure(fig, workdir: str | pathlib.Path, name: str) -> str:
    """Saves ``fig`` as ``workdir/name`` (a .png), closes it, and returns the file name."""
    if not name.endswith(".png"):
        name += ".png"
    path = pathlib.Path(workdir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return name
