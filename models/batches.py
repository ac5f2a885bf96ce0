"""Training batches made ahead in worker processes, and the choice of training device.

On a 2-core CPU the network's forward and backward pass dominates a step, and the batch is made
inline. On a GPU the same step takes milliseconds and the Python augmentation of 64 frames (or
crops) becomes the bottleneck, so ``Prefetcher`` makes batches in forked worker processes, a
bounded number ahead of the step that needs them, in task order.

Tasks carry everything a batch depends on (the sample indices and a seed for the augmentation),
so the batches are the same whichever worker makes them, and with 0 workers (inline) too.

Workers are forked (``fork`` start method) before the parent touches CUDA -- a forked child of a
process with a CUDA context cannot use it, and does not need to: workers only run NumPy and
OpenCV on the data they inherited. Batches come back through pipes (pickled NumPy arrays), not
shared memory, so a small ``/dev/shm`` (containers) does not matter.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

# The batch function of the current Prefetcher, inherited by its forked workers.
_MAKE: Callable[[Any], Any] | None = None


def _make(task: Any) -> Any:
    assert _MAKE is not None
    return _MAKE(task)


class Prefetcher:
    """``map(tasks)`` yields ``make(task)`` for each task in order, computed by ``workers``
    forked processes at most ``depth`` tasks ahead (0 workers: inline, nothing ahead).

    Create it before CUDA is initialised in this process; ``close()`` (or ``with``) ends the
    workers. An exception in ``make`` is raised again by ``map`` at that task.
    """

    def __init__(self, make: Callable[[Any], Any], workers: int = 0, depth: int | None = None) -> None:
        global _MAKE
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if workers and torch.cuda.is_initialized():
            raise RuntimeError("Prefetcher workers must be forked before CUDA is initialised in this process")
        self.make, self.workers = make, workers
        self.depth = depth if depth is not None else 3 * workers
        self.pool = None
        if workers:
            _MAKE = make
            self.pool = mp.get_context("fork").Pool(workers)

    def map(self, tasks: Iterable[Any]) -> Iterator[Any]:
        if self.pool is None:
            for task in tasks:
                yield self.make(task)
            return
        it = iter(tasks)
        pending = deque(self.pool.apply_async(_make, (t,)) for t in itertools.islice(it, max(1, self.depth)))
        while pending:
            result = pending.popleft().get()
            for t in itertools.islice(it, 1):
                pending.append(self.pool.apply_async(_make, (t,)))
            yield result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_batches(make: Callable[[Any], Any], tasks: Iterable[Any], workers: int,
                  device: str) -> tuple[Prefetcher, Iterator[Any], torch.device]:
    """The training scripts' start: fork the batch workers (before CUDA starts in this process),
    then choose the device (``pick_device``), and say where training runs. Returns the
    prefetcher (close it when done), the stream of batches and the device."""
    prefetch = Prefetcher(make, workers)
    try:
        dev = pick_device(device)
    except BaseException:
        prefetch.close()
        raise
    gpu = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    print(f"training on {dev}{gpu}, batches made by {workers or 'no'} worker process(es)", flush=True)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    return prefetch, prefetch.map(tasks), dev


def pick_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (an error naming the reason when no GPU is usable) or ``auto``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: torch {torch.__version__} sees no usable CUDA GPU")
    if name != "cpu" and not name.startswith("cuda"):
        raise SystemExit(f"--device must be cpu, cuda[:N] or auto, got {name!r}")
    return torch.device(name)


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict on the CPU (a checkpoint that loads on any machine)."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
