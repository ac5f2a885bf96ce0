"""Content-addressed cache of built TensorRT engines (plain Python: tested without TensorRT).

A serialized TensorRT engine is valid only for the exact TensorRT version and GPU model it was
built with, and it bakes in the precision, the optimisation-profile shapes and (for INT8) the
calibration data. Reusing one across any of these either fails at deserialisation or, worse,
runs with silently different numerics. So the cache file name is a digest of all of them:

``<model stem>-<first 20 hex of sha256(key JSON)>.engine`` plus a ``.json`` sidecar holding the
full key, the build time and the build options. A lookup recomputes the key from the ONNX file
and the target and only returns a file whose sidecar matches field by field; anything else is a
miss, never a silent reuse. Files are written atomically (tmp + fsync + rename), engine first,
sidecar last, so a crash mid-write leaves at worst an orphan engine that no lookup returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..errors import EngineError

__all__ = ["EngineCache", "EngineKey", "Profile", "sha256_file", "sha256_arrays"]

PRECISIONS = ("fp32", "fp16", "int8")

# One optimisation-profile entry: input name -> (min, opt, max) shapes.
Profile = Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                digest.update(block)
    except FileNotFoundError:
        raise EngineError(f"model file {path} does not exist") from None
    return digest.hexdigest()


def sha256_arrays(arrays: Iterable[Any], extra: str = "") -> str:
    """Hex SHA-256 over arrays' dtype, shape and bytes in order (the calibration set's identity)."""
    import numpy as np

    digest = hashlib.sha256(extra.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on. Two builds with equal keys are interchangeable."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str               # "8.7" for Jetson Orin, "9.0" for H100
    precision: str                        # fp32 | fp16 | int8
    shapes: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    calibration_sha256: str = ""          # "" unless precision is int8

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.precision == "int8" and not self.calibration_sha256:
            raise EngineError("an int8 engine key needs the calibration set's hash (calibration_sha256)")
        if not re.fullmatch(r"[0-9a-f]{64}", self.onnx_sha256):
            raise EngineError(f"onnx_sha256 must be 64 lower-case hex digits, got {self.onnx_sha256!r}")
        # Canonical order so that the same profile given in another order hashes the same.
        canon = tuple(
            sorted((str(n), tuple(map(int, lo)), tuple(map(int, opt)), tuple(map(int, hi))) for n, lo, opt, hi in self.shapes)
        )
        object.__setattr__(self, "shapes", canon)

    @classmethod
    def make(
        cls,
        *,
        onnx_sha256: str,
        tensorrt_version: str,
        gpu_name: str,
        compute_capability: str,
        precision: str,
        profile: Profile,
        calibration_sha256: str = "",
    ) -> EngineKey:
        shapes = tuple((name, *mmo) for name, mmo in profile.items())
        return cls(onnx_sha256, tensorrt_version, gpu_name, compute_capability, precision, shapes, calibration_sha256)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shapes"] = [{"name": n, "min": list(lo), "opt": list(opt), "max": list(hi)} for n, lo, opt, hi in self.shapes]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EngineKey:
        shapes = tuple((s["name"], tuple(s["min"]), tuple(s["opt"]), tuple(s["max"])) for s in d["shapes"])
        return cls(
            d["onnx_sha256"], d["tensorrt_version"], d["gpu_name"], d["compute_capability"], d["precision"], shapes,
            d.get("calibration_sha256", ""),
        )

    def digest(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class EngineCache:
    """A folder of ``<stem>-<digest>.engine`` files with JSON sidecars."""

    DIGEST_CHARS = 20  # 80 bits: collisions are not a practical concern for a handful of engines

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(os.path.expanduser(os.fspath(directory)))

    def path_for(self, key: EngineKey, stem: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "model"
        return self.directory / f"{safe}-{key.digest()[: self.DIGEST_CHARS]}.engine"

    def lookup(self, key: EngineKey, stem: str) -> Path | None:
        """The cached engine for ``key``, or None. A sidecar that disagrees is a miss."""
        path = self.path_for(key, stem)
        meta = self.read_meta(path)
        if meta is None or not path.is_file():
            return None
        try:
            stored = EngineKey.from_json(meta["key"])
        except (KeyError, TypeError, ValueError, EngineError):
            return None
        return path if stored == key else None

    def find(self, key: EngineKey, stem: str, ignore: tuple[str, ...] = ()) -> Path | None:
        """Like :meth:`lookup`, but fields named in ``ignore`` may differ (newest match wins)."""
        if not ignore:
            return self.lookup(key, stem)
        want = {k: v for k, v in key.to_json().items() if k not in ignore}
        best = None
        for path, meta in self.entries():
            try:
                stored = EngineKey.from_json(meta["key"]).to_json()
            except (KeyError, TypeError, ValueError, EngineError):
                continue
            if {k: v for k, v in stored.items() if k not in ignore} == want:
                if best is None or path.stat().st_mtime > best.stat().st_mtime:
                    best = path
        return best

    def store(self, key: EngineKey, stem: str, data: bytes, info: Mapping[str, Any] | None = None) -> Path:
        """Write engine bytes then the sidecar, each atomically; returns the engine path."""
        if not data:
            raise EngineError("refusing to cache an empty engine")
        path = self.path_for(key, stem)
        atomic_write_bytes(path, bytes(data))
        meta = {"key": key.to_json(), "digest": key.digest(), "bytes": len(data), **(info or {})}
        atomic_write_bytes(_meta_path(path), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        return path

    @staticmethod
    def read_meta(engine_path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(_meta_path(engine_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def entries(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every complete (engine, sidecar) pair in the folder, sorted by name."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.engine")):
            meta = self.read_meta(path)
            if meta is not None:
                out.append((path, meta))
        return out


def _meta_path(engine_path: Path) -> Path:
    return engine_path.with_suffix(".json")
