"""Reports of an evaluation: the JSON document, a markdown summary and a PNG figure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..errors import CaperError
from .harness import BagResult, reliability_of, summarise

__all__ = ["CONTRACT_KEYS", "build_report", "markdown", "write_png"]

#: The keys the evaluation contract promises (DESIGN.md "Evaluation").
CONTRACT_KEYS = ("basket_exact_match", "acd", "item_precision", "item_recall", "item_f1", "event_f1",
                 "shrink_alarm_precision", "shrink_alarm_recall", "time_to_event_p50_s", "time_to_event_p95_s",
                 "frames", "fps", "hota", "idf1", "mota")

_COLUMNS = (("cAcc", "basket_exact_match", "{:.3f}"), ("ACD", "acd", "{:.3f}"), ("item F1", "item_f1", "{:.3f}"),
            ("event F1", "event_f1", "{:.3f}"), ("shrink P", "shrink_alarm_precision", "{:.3f}"),
            ("shrink R", "shrink_alarm_recall", "{:.3f}"), ("t p50 s", "time_to_event_p50_s", "{:.2f}"),
            ("t p95 s", "time_to_event_p95_s", "{:.2f}"), ("events", "events", "{:d}"), ("HOTA", "hota", "{:.3f}"),
            ("IDF1", "idf1", "{:.3f}"), ("MOTA", "mota", "{:.3f}"), ("FPS", "fps", "{:.1f}"))


def build_report(results: Sequence[BagResult], *, vision: str, mode: str, by_scenario: bool,
                 settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: the overall metrics at the top level (the contract's keys), then
    ``bags`` (per bag) and, if asked, ``by_scenario``."""
    overall = summarise(results)
    report: dict[str, Any] = {**overall, "vision": vision, "mode": mode, "settings": settings}
    if vision == "oracle":
        report["warning"] = ("DIAGNOSTIC: vision made from ground-truth objects (--vision oracle); "
                             "these are not product numbers")
    rel = reliability_of(results)
    if rel is not None:
        report["reliability"] = {"edges": rel.edges, "count": rel.count, "mean_confidence": rel.mean_confidence,
                                 "accuracy": rel.accuracy, "ece": rel.ece}
    report["bags"] = [r.summary() for r in results]
    if by_scenario:
        groups: dict[str, list[BagResult]] = {}
        for r in results:
            groups.setdefault(r.scenario, []).append(r)
        report["by_scenario"] = {name: summarise(rs) for name, rs in sorted(groups.items())}
    return report


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _table(rows: list[tuple[str, dict[str, Any]]], first: str) -> list[str]:
    head = "| " + " | ".join([first] + [c for c, _, _ in _COLUMNS]) + " |"
    rule = "|" + "|".join(["---"] * (len(_COLUMNS) + 1)) + "|"
    lines = [head, rule]
    for name, m in rows:
        lines.append("| " + " | ".join([name] + [_cell(m.get(k), f) for _, k, f in _COLUMNS]) + " |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    lines = ["# caper-edge evaluation", ""]
    if "warning" in report:
        lines += [f"**{report['warning']}**", ""]
    lines += [f"vision: `{report['vision']}`, fusion mode: `{report['mode']}`, bags: {report['n_bags']}, "
              f"frames: {report['frames']}", ""]
    lines += ["## Overall", ""] + _table([("all", report)], "set") + [""]
    if "by_scenario" in report:
        lines += ["## By scenario", ""] + _table(sorted(report["by_scenario"].items()), "scenario") + [""]
    lines += ["## Per bag", ""]
    lines += _table([(f"{Path(b['bag']).name} ({b['scenario']})", b) for b in report["bags"]], "bag") + [""]
    if "reliability" in report:
        rel = report["reliability"]
        lines += ["## Confidence calibration (item events)", "",
                  f"expected calibration error: {_cell(rel['ece'], '{:.3f}')}", "",
                  "| confidence bin | events | mean confidence | accuracy |", "|---|---|---|---|"]
        for i, n in enumerate(rel["count"]):
            if n:
                lines.append(f"| {rel['edges'][i]:.1f}-{rel['edges'][i + 1]:.1f} | {n} | "
                             f"{rel['mean_confidence'][i]:.3f} | {rel['accuracy'][i]:.3f} |")
        lines.append("")
    s = report.get("settings", {})
    if s:
        lines += ["## Settings", "", "```", *(f"{k} = {v}" for k, v in s.items()), "```", ""]
    return "\n".join(lines)


def write_png(path: str | Path, results: Sequence[BagResult], report: dict[str, Any]) -> None:
    """SKU confusion of matched item events, time-to-event distribution and reliability diagram."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CaperError("--png needs matplotlib (pip install 'caper-edge[test]')") from None
    import io

    import numpy as np

    pairs = Counter(p for r in results for p in r.confusion)
    skus = sorted({s for pair in pairs for s in pair if s})
    idx = {s: i for i, s in enumerate(skus)}
    mat = np.zeros((len(skus), len(skus)), np.int64)
    for (g, p), n in pairs.items():
        if g in idx and p in idx:
            mat[idx[g], idx[p]] += n
    lat = [x for r in results for x in r.latencies_s]
    fig, axes = plt.subplots(1, 3, figsize=(18, 6), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    ax = axes[0]
    if len(skus):
        ax.imshow(np.log1p(mat), cmap="viridis")
        ax.set_xticks(range(len(skus)), skus, rotation=90, fontsize=6)
        ax.set_yticks(range(len(skus)), skus, fontsize=6)
        for (i, j), n in np.ndenumerate(mat):
            if n and i != j:
                ax.text(j, i, str(n), ha="center", va="center", color="w", fontsize=6)
    ax.set_xlabel("predicted SKU")
    ax.set_ylabel("ground-truth SKU")
    ax.set_title("SKU confusion of item events (off-diagonal: wrong SKU)")
    ax = axes[1]
    if lat:
        ax.hist(lat, bins=30, color="tab:blue")
        for q, style in ((50, "--"), (95, ":")):
            v = float(np.percentile(lat, q))
            ax.axvline(v, color="k", linestyle=style, label=f"p{q} = {v:.2f} s")
        ax.legend()
    ax.set_xlabel("decision time - item at rest (s)")
    ax.set_ylabel("item events")
    ax.set_title("time to event")
    ax = axes[2]
    rel = report.get("reliability")
    if rel:
        centers = [(a + b) / 2 for a, b in zip(rel["edges"][:-1], rel["edges"][1:])]
        acc = [a if a is not None else np.nan for a in rel["accuracy"]]
        ax.bar(centers, acc, width=0.09, color="tab:green", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        ax.set_title(f"reliability (ECE {rel['ece']:.3f})" if rel["ece"] is not None else "reliability")
        ax.legend()
    ax.set_xlabel("confidence")
    ax.set_ylabel("fraction correct")
    title = f"vision: {report['vision']}, mode: {report['mode']}"
    if "warning" in report:
        title += "  -- DIAGNOSTIC (ground-truth vision)"
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
