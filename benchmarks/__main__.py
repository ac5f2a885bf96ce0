"""Run the benchmark suites and write ``benchmarks/out/results.json`` and ``results.png``."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from . import harness


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name[len("bench_") :] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    suites = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (CI); medians are noisier")
    parser.add_argument("--only", action="append", choices=suites, help="run only these suites (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder (default %(default)s)")
    args = parser.parse_args(argv)

    harness.pin_single_thread()
    print("measuring single-thread copy bandwidth ...", flush=True)
    bandwidth = harness.copy_bandwidth_gbps(64 << 20 if args.quick else 256 << 20)
    results = []
    for suite in args.only or suites:
        module = importlib.import_module(f"benchmarks.bench_{suite}")
        for case in module.cases(args.quick):
            row = harness.run_case(case, quick=args.quick, bandwidth_gbps=bandwidth)
            results.append(row)
            print(format_row(row), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "created_unix": time.time(),
        "quick": args.quick,
        "environment": harness.environment(),
        "copy_bandwidth_gbps": bandwidth,
        "results": results,
    }
    json_path = args.out / "results.json"
    json_path.write_text(json.dumps(report, indent=2))
    png_path = plot(results, args.out / "results.png")
    print(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))
    return 0


def format_row(row: dict) -> str:
    text = f"{row['suite']:>11s} | {row['case']:<44s} median {row['median_s'] * 1e3:9.3f} ms  p99 {row['p99_s'] * 1e3:9.3f} ms"
    if "ratio" in row:
        text += f" | {row['peer']}: {row['peer_median_s'] * 1e3:9.3f} ms  ratio {row['ratio']:6.2f}x"
    if "bandwidth_fraction" in row:
        text += f" | {row['bandwidth_fraction'] * 100:5.1f}% of same-size copy"
    if "items_per_s" in row:
        text += f" | {row['items_per_s']:.3g} {row['item_unit']}/s"
    return text


def plot(results: list[dict], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: skipping the PNG", file=sys.stderr)
        return None
    rows = [r for r in results if "ratio" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    labels = [f"{r['suite']}: {r['case']}" for r in rows]
    ratios = [r["ratio"] for r in rows]
    ax.barh(labels, ratios, color=["tab:green" if x >= 1 else "tab:red" for x in ratios])
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("speed-up over the peer (peer median / our median, same run)")
    ax.invert_yaxis()
    for y, r in enumerate(rows):
        ax.text(r["ratio"], y, f" {r['ratio']:.1f}x vs {r['peer']}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
