"""Shared fixtures and hardware markers.

Tests marked ``gpu`` skip unless a CUDA device is usable, ``tensorrt`` unless ``tensorrt``
imports, ``realsense`` unless ``pyrealsense2`` imports; each skip states the reason.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import caper_edge


def _gpu_skip_reason() -> str | None:
    count, reason = caper_edge.cuda_device_count()
    return None if count > 0 else f"no usable CUDA GPU: {reason}"


def _import_skip_reason(module: str) -> str | None:
    return None if importlib.util.find_spec(module) is not None else f"{module} is not installed"


def pytest_collection_modifyitems(config, items):
    reasons = {
        "gpu": _gpu_skip_reason(),
        "tensorrt": _import_skip_reason("tensorrt") or _gpu_skip_reason(),
        "realsense": _import_skip_reason("pyrealsense2"),
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator: failures reproduce."""
    return np.random.default_rng(20261125)


@pytest.fixture(scope="session")
def sim_bag(tmp_path_factory):
    """14 s of the simulator's `simple` scenario, seed 7: two products go in (about 5 s to make)."""
    pytest.importorskip("caper_edge.sim")
    from caper_edge.sim import write_bag

    out = tmp_path_factory.mktemp("bags") / "simple_seed7"
    write_bag(out, "simple", 7, 14.0)
    return out
