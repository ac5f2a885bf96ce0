"""Load-cell calibration: counts to grams, tare, per-cell gains, and writing them to the config.

The model (config ``[scale.calibration]``)::

    grams_i = (raw_i - offsets[i]) * gains[i]        grams = sum_i grams_i

- **Tare** (basket empty): ``offsets[i]`` is the mean of cell i's raw counts over a few seconds.
- **Gains**: a known mass ``M`` placed at several positions (centre, then each corner). Placement
  ``j`` gives mean counts ``r_j`` and the equation ``sum_i (r_ji - offsets[i]) * gains[i] = M``.
  Five placements and four unknowns: solved by least squares (``numpy.linalg.lstsq``). A
  corner placement loads mostly its own cell, so each gain is pinned chiefly by its corner and
  the system is well conditioned; the centre adds a fifth equation whose residual exposes a
  misplaced mass or a non-linear cell. Placements that do not span all four cells (e.g. only the
  centre) leave the gains undetermined and are rejected, naming the condition number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CaperError, ConfigError
from .protocol import CELLS

__all__ = ["GainSolution", "apply", "solve_gains", "tare", "write_calibration"]

# A least-squares system worse conditioned than this cannot tell the cells apart.
_MAX_CONDITION = 1e4


def apply(raw: np.ndarray | Sequence[int], offsets: Sequence[float], gains: Sequence[float]) -> np.ndarray:
    """Per-cell grams of raw counts: (..., 4) counts -> (..., 4) float64 grams."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape[-1:] != (CELLS,):
        raise ValueError(f"raw must have {CELLS} cells in its last axis, got shape {raw.shape}")
    return (raw - np.asarray(offsets, dtype=np.float64)) * np.asarray(gains, dtype=np.float64)


def tare(raw: np.ndarray) -> np.ndarray:
    """Offsets (4,) in counts: the per-cell mean of (n, 4) raw counts taken with the basket empty."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != CELLS or raw.shape[0] < 1:
        raise ValueError(f"tare needs (n, {CELLS}) raw counts with n >= 1, got shape {raw.shape}")
    return raw.mean(axis=0)


@dataclass(frozen=True)
class GainSolution:
    """Least-squares gains (grams per count, cells 0..3), the residual of each placement in grams
    (measured - known mass) and the condition number of the system."""

    gains: np.ndarray
    residuals_g: np.ndarray
    condition: float


def solve_gains(mean_raw: np.ndarray, masses_g: Sequence[float], offsets: Sequence[float]) -> GainSolution:
    """Per-cell gains from placements: ``mean_raw`` (k, 4) mean counts of placement j holding
    ``masses_g[j]`` grams; ``offsets`` (4,) from :func:`tare`. Needs k >= 4 placements that load
    the cells differently (the corners); raises CaperError otherwise or when a gain comes out
    non-positive (a cell wired backwards or a placement on the wrong corner)."""
    a = np.asarray(mean_raw, dtype=np.float64) - np.asarray(offsets, dtype=np.float64)
    m = np.asarray(masses_g, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != CELLS or a.shape[0] != m.shape[0]:
        raise ValueError(f"mean_raw must be (k, {CELLS}) with k = len(masses_g) = {m.shape[0]}, got {a.shape}")
    if a.shape[0] < CELLS:
        raise CaperError(f"{a.shape[0]} placements cannot determine {CELLS} cell gains: place the mass at "
                         f"the centre and at each of the {CELLS} corners")
    if not (m > 0).all():
        raise ValueError(f"masses_g = {m.tolist()}: expected positive grams")
    condition = float(np.linalg.cond(a))
    if not np.isfinite(condition) or condition > _MAX_CONDITION:
        raise CaperError(f"the placements do not tell the cells apart (condition number {condition:.3g} > "
                         f"{_MAX_CONDITION:g}): place the mass on each corner, not only at the centre")
    gains, *_ = np.linalg.lstsq(a, m, rcond=None)
    if not (gains > 0).all():
        raise CaperError(f"solved gains {gains.tolist()} are not all positive: check the cell wiring and that "
                         "each corner placement was on the corner asked for")
    return GainSolution(gains=gains, residuals_g=a @ gains - m, condition=condition)


def write_calibration(path: str | Path, offsets: Sequence[float], gains: Sequence[float]) -> None:
    """Write ``[scale.calibration]`` offsets and gains into the TOML file ``path``.

    Comments, key order and every other key survive (tomlkit); the file, the ``[scale]`` table or
    the ``[scale.calibration]`` table is created when missing. The write is atomic (a temporary
    file renamed over the old one), so a crash never leaves half a config.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    path = Path(path)
    offsets = [round(float(o), 3) for o in offsets]
    gains = [float(f"{float(g):.9g}") for g in gains]
    if len(offsets) != CELLS or len(gains) != CELLS:
        raise ValueError(f"expected {CELLS} offsets and {CELLS} gains, got {len(offsets)} and {len(gains)}")
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        raise ConfigError(f"config file {path} cannot be read as TOML: {exc}") from None
    scale = doc.get("scale")
    if scale is None:
        scale = tomlkit.table(is_super_table=True)
        doc["scale"] = scale
    elif not isinstance(scale, dict):
        raise ConfigError(f"config file {path}: key scale = {scale!r} must be a table")
    cal = scale.get("calibration")
    if cal is None:
        cal = tomlkit.table()
        cal.add(tomlkit.comment("Written by `caper-edge calibrate`: grams = sum_i (raw_i - offsets[i]) * gains[i]."))
        scale["calibration"] = cal
    elif not isinstance(cal, dict):
        raise ConfigError(f"config file {path}: key scale.calibration = {cal!r} must be a table")
    cal["offsets"] = offsets
    cal["gains"] = gains
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    tmp.replace(path)
