"""The one engine interface every backend implements: named, shaped, typed tensors in and out.

An :class:`Engine` declares its inputs and outputs as :class:`TensorSpec` (name, shape with
``None`` for a dynamic dimension, NumPy dtype). The specs are checked when the model is loaded
(a model whose tensors have an unsupported element type or rank is refused) and at every call
(every input present, nothing unknown, shape and dtype matching), so a mismatch is one clear
:class:`~caper_edge.errors.EngineError` such as
``input 'images' must be (1, 3, 320, 320) float32, got (1, 3, 640, 640) float32`` instead of a
backend traceback.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineError

__all__ = ["Engine", "TensorSpec", "format_shape"]


def format_shape(shape: tuple[int | None, ...]) -> str:
    """``(1, 3, None, None)`` -> ``"(1, 3, ?, ?)"``; a 1-tuple keeps its trailing comma."""
    parts = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of an engine.

    ``shape`` holds one entry per dimension: a positive int for a fixed size or ``None`` for a
    dynamic one (an ONNX ``dim_param`` or a TensorRT ``-1``). ``dtype`` is a NumPy dtype.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(None if d is None else int(d) for d in self.shape))

    @property
    def is_dynamic(self) -> bool:
        return any(d is None for d in self.shape)

    def describe(self) -> str:
        return f"{format_shape(self.shape)} {self.dtype.name}"

    def matches(self, shape: tuple[int, ...], dtype: np.dtype) -> bool:
        if np.dtype(dtype) != self.dtype or len(shape) != len(self.shape):
            return False
        return all(want is None or want == got for want, got in zip(self.shape, shape))

    def check(self, array: Any, role: str = "input") -> np.ndarray:
        """Return ``array`` as a C-contiguous ndarray or raise naming this tensor and the mismatch."""
        if not isinstance(array, np.ndarray):
            raise EngineError(f"{role} '{self.name}' must be a numpy.ndarray {self.describe()}, got {type(array).__name__}")
        if not self.matches(array.shape, array.dtype):
            raise EngineError(
                f"{role} '{self.name}' must be {self.describe()}, got {format_shape(array.shape)} {array.dtype.name}"
            )
        if any(d == 0 for d in array.shape):
            raise EngineError(f"{role} '{self.name}' is empty: shape {format_shape(array.shape)}")
        return np.ascontiguousarray(array)


class Engine(abc.ABC):
    """A loaded model: ``engine.run({"images": x}) -> {"output0": y}``.

    Subclasses set ``inputs``, ``outputs``, ``path`` and ``backend`` and implement :meth:`_run`.
    Inputs are checked against their specs before the backend sees them, outputs after it returns.
    Engines are context managers; :meth:`close` releases the backend's resources.
    """

    backend: str = "?"

    @property
    def concurrent_runs_safe(self) -> bool:
        """True when two threads may call :meth:`run` at once (no shared bound buffers or
        execution context). The pipeline runs several vision workers only then."""
        return False
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    # -- public API -------------------------------------------------------------------------

    def input(self, name: str | None = None) -> TensorSpec:
        """The spec of input ``name`` (or of the only input)."""
        return self._spec(self.inputs, name, "input")

    def output(self, name: str | None = None) -> TensorSpec:
        """The spec of output ``name`` (or of the only output)."""
        return self._spec(self.outputs, name, "output")

    def run(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run once. ``feeds`` maps input names to arrays; a bare array feeds a single-input model.

        Returns a new dict of output name -> array. Backends may reuse output buffers between
        calls (see each backend); copy an output you keep past the next call.
        """
        checked = self._check_feeds(feeds)
        results = self._run(checked)
        for spec in self.outputs:
            if spec.name not in results:
                raise EngineError(f"{self.backend} engine {self.path.name} did not produce output '{spec.name}'")
            spec.check(results[spec.name], role="output")
        return results

    __call__ = run

    def close(self) -> None:  # noqa: B027 - a no-op unless the backend holds resources
        """Release backend resources; the engine cannot run afterwards."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        ins = ", ".join(f"{s.name} {s.describe()}" for s in self.inputs)
        outs = ", ".join(f"{s.name} {s.describe()}" for s in self.outputs)
        return f"{self.backend} engine {self.path.name}: inputs [{ins}] -> outputs [{outs}]"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    # -- for subclasses ---------------------------------------------------------------------

    @abc.abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Backend call on checked, C-contiguous inputs."""

    def _check_feeds(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        if isinstance(feeds, np.ndarray):
            if len(self.inputs) != 1:
                names = ", ".join(repr(s.name) for s in self.inputs)
                raise EngineError(f"{self.path.name} has {len(self.inputs)} inputs ({names}): pass a dict of name -> array")
            feeds = {self.inputs[0].name: feeds}
        if not isinstance(feeds, Mapping):
            raise EngineError(f"feeds for {self.path.name} must be a dict of name -> numpy array, got {type(feeds).__name__}")
        known = {s.name for s in self.inputs}
        unknown = sorted(set(feeds) - known)
        if unknown:
            raise EngineError(f"{self.path.name} has no input {unknown[0]!r} (inputs: {', '.join(sorted(known))})")
        checked = {}
        for spec in self.inputs:
            if spec.name not in feeds:
                raise EngineError(f"input '{spec.name}' {spec.describe()} of {self.path.name} is missing")
            checked[spec.name] = spec.check(feeds[spec.name], role="input")
        return checked

    @staticmethod
    def _spec(specs: tuple[TensorSpec, ...], name: str | None, role: str) -> TensorSpec:
        if name is None:
            if len(specs) != 1:
                raise EngineError(f"the engine has {len(specs)} {role}s: name one of {[s.name for s in specs]}")
            return specs[0]
        for spec in specs:
            if spec.name == name:
                return spec
        raise EngineError(f"no {role} named {name!r} (have {[s.name for s in specs]})")
