"""Evaluation of basket events against ground truth: metrics (:mod:`.metrics`), per-bag and
overall reports (:mod:`.report`) and the ``caper-edge eval`` harness. docs/evaluation.md has the
formulas."""
