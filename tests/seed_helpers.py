"""Synthetic analysis summaries for the tests of statistics over seeds."""

from __future__ import annotations

from groklab.records import (
    AblationSummary,
    Agreement,
    BasisRecord,
    FinalMetrics,
    GrokkingEvents,
    Phases,
    RunInfo,
    Summary,
)

BUDGET = 1000


def summary(seed: int, grok: int | None, mem: int | None = 50, keys: tuple[int, ...] = (), drop: float | None = None,
            cleanup: int | None = None, last: int = BUDGET, op: str = "add") -> Summary:  # fmt: skip
    """A summary as the analysis writes it, with the given events, key frequencies and ablation drop."""
    delay = grok - mem if grok is not None and mem is not None else None
    reasons = {} if grok is not None else {"grokking_step": "test accuracy never reached 0.95 (best 0.3 at step 900)"}
    if mem is None:
        reasons["memorization_step"] = "train accuracy never reached 0.99 (best 0.5 at step 900)"
    events = GrokkingEvents(mem, grok, delay, last, last // 10, reasons=reasons)
    circuit = grok - 20 if grok is not None else None
    phase_reasons = {} if cleanup is not None else {"cleanup_end": "cleanup has not ended by the last progress record"}
    if grok is None:
        phase_reasons["circuit_formation_end"] = "the run did not grok"
    phases = Phases(0, mem, circuit, cleanup, last, {}, reasons=phase_reasons)
    key_reason = None if keys else "no neuron cluster reaches the size threshold"
    return Summary(
        run=f"seed_{seed}",
        config=RunInfo("quick", op, 97, 0.3, seed),
        basis=BasisRecord("identity", 97),
        state="completed",
        analysed_step=last,
        n_checkpoints=10,
        events=events,
        phases=phases,
        key_frequencies=list(keys),
        key_frequency_counts={k: 10 for k in keys},
        key_frequencies_reason=key_reason,
        embedding_key_frequencies=list(keys),
        key_frequency_agreement=Agreement(list(keys), [], [], 1.0, True),
        final=FinalMetrics(last, 0.01, 1.0, 0.05 if grok else 3.0, 0.99 if grok else 0.3),
        criteria=[],
        all_passed=True,
        ablation=AblationSummary(0.99, drop, 1.0 if drop is not None else None, 5, key_reason),
    )
