"""caper_edge benchmarks: ``python -m benchmarks [--quick] [--only SUITE] [--out DIR]``.

Each ``bench_<suite>.py`` module exposes ``cases(quick: bool) -> list[Case]``; the harness in
:mod:`benchmarks.harness` times ours and the peer in the same run, single-threaded on both
sides, and writes JSON plus a PNG. Benchmarks report; they never assert.
"""
