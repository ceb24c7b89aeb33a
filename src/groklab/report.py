"""One self-contained HTML page per run: config, key numbers, success criteria, every figure.

The page needs nothing but itself: styles are inline, images are embedded as base64 data URIs,
and there is no script and no link to anything outside the file. :func:`render_report` is a pure
function of records and image bytes; :func:`run_report` gathers them from an analysed run whose
figures have been drawn (``figures/index.json``). Writing the page is the CLI's job.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from groklab.analysis.neurons import EMBED_FRACTION
from groklab.config import to_yaml
from groklab.conventions import PHASE_LABELS, PHASES, basis_name, event_rule
from groklab.records import AblationReport, Criterion, Phases, Summary
from groklab.runs import Run, RunError

__all__ = ["ReportFigure", "render_report", "run_report"]

MIME = {"png": "image/png", "gif": "image/gif"}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;padding:1.5em 2em;max-width:1150px;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;font-size:14px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#f5f5f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#11772d;font-weight:700}.fail{color:#b3261e;font-weight:700}
.null{color:#888;font-style:italic}
figure{margin:1.2em 0 2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:14px;color:#333;margin-top:.3em}figcaption b{color:#000}
pre{background:#f7f7f7;padding:.8em 1em;overflow:auto;font-size:13px}
nav a{margin-right:1em}.warn{background:#fff6dc;padding:.5em 1em;border-left:4px solid #e0b000}
"""


@dataclass
class ReportFigure:
    name: str
    group: str
    title: str
    caption: str
    kind: str  # png | gif
    data: bytes


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "<span class='null'>n/a</span>"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return _e(v)
        return _e(f"{v:.{digits}g}")
    return _e(v)


def _or_reason(v: Any, reason: str | None, digits: int = 4) -> str:
    if v is None and reason:
        return f"<span class='null'>n/a: {_e(reason)}</span>"
    return _num(v, digits)


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _event_rows(summary: Summary) -> list[tuple[str, str]]:
    """Each grokking event labelled with its rule (n/a with the reason when it did not happen), then
    the final metrics."""
    ev, final = summary.events, summary.final
    events = (
        ("memorization step", "memorization_step", ev.memorization_step),
        ("grokking step", "grokking_step", ev.grokking_step),
        ("delay in steps", "delay", ev.delay),
    )
    return [
        *((f"{label} ({event_rule(name)})", _or_reason(value, ev.reasons.get(name))) for label, name, value in events),
        ("final step", _num(final.step)),
        ("final train / test accuracy", f"{_num(final.train_acc)} / {_num(final.test_acc)}"),
        ("final train / test loss (nats)", f"{_num(final.train_loss)} / {_num(final.test_loss)}"),
    ]


def _frequency_rows(summary: Summary) -> list[tuple[str, str]]:
    """The basis the frequencies live in, the key frequencies (from neuron clusters; none with the
    reason), the embedding's list beside them and the agreement of the two."""
    counts = ", ".join(f"{k}: {n}" for k, n in summary.key_frequency_counts.items())
    if summary.key_frequencies:
        used = _e(summary.key_frequencies) + " <span class='null'>from neuron clusters</span>"
    else:
        used = f"none <span class='null'>({_e(summary.key_frequencies_reason or 'no reason recorded')})</span>"
    embedding = f"by embedding norm (above a shuffled-basis null and >= {EMBED_FRACTION:g} of the largest)"
    return [
        ("Fourier basis (frequencies k of Z_n)", _e(basis_name(summary.basis))),
        ("key frequencies (used)", used),
        ("by neuron clusters (k: neurons)", _e(counts or "none")),
        (embedding, _e(summary.embedding_key_frequencies)),
        ("agreement of the two lists (Jaccard)", _num(summary.key_frequency_agreement.jaccard, 3)),
    ]


def _ablation_rows(summary: Summary, ablation: AblationReport | None) -> list[tuple[str, str]]:
    ab = summary.ablation
    freq = ablation.frequency if ablation is not None else None
    control_why = ab.reason or ((freq.control.note or "no control draws") if freq is not None else None)
    break_why = ablation.neurons.cumulative.n_to_below_half_reason if ablation is not None else None
    rows = [
        ("baseline test accuracy", _num(ab.baseline_test_acc)),
        ("accuracy drop, key frequencies removed (points)", _or_reason(ab.key_frequency_acc_drop, ab.reason, 3)),
        (
            "accuracy drop, random frequencies removed (points, mean)",
            _or_reason(ab.control_acc_drop_mean, control_why, 3),
        ),
        ("neurons to ablate (by importance) for test acc < 50%", _or_reason(ab.neurons_to_break, break_why)),
    ]
    if ablation is None:
        return rows
    for c in ablation.neurons.clusters:
        rows.append(
            (f"cluster k = {c.k} ({c.size} neurons) ablated: test acc", f"{_num(c.ablated.test_acc)} "
             f"<span class='null'>(random groups: {_num(c.random.test_acc.mean)})</span>"),
        )  # fmt: skip
    for h in ablation.heads or []:
        rows.append((f"head {h.layer}.{h.head} ablated: accuracy drop (points)", _num(h.acc_drop, 3)))
    return rows


def _key_numbers(summary: Summary, ablation: AblationReport | None) -> str:
    return _rows(_event_rows(summary) + _frequency_rows(summary) + _ablation_rows(summary, ablation))


def _phases(ph: Phases) -> str:
    """Each phase's start and end step (an end that could not be placed: n/a with the reason)."""
    bounds = [
        ("first_step", ph.first_step),
        ("memorization_end", ph.memorization_end),
        ("circuit_formation_end", ph.circuit_formation_end),
        ("cleanup_end", ph.cleanup_end),
    ]
    rows = [
        (PHASE_LABELS[name], f"{_num(start)} to {_or_reason(end, ph.reasons.get(end_name))}")
        for name, (_, start), (end_name, end) in zip(PHASES, bounds, bounds[1:], strict=False)
    ]
    notes = "".join(f"<li><b>{_e(k.replace('_', ' '))}</b>: {_e(v)}</li>" for k, v in ph.rules.items())
    return _rows(rows) + (f"<details><summary>phase rules</summary><ul>{notes}</ul></details>" if notes else "")


def _criterion_row(c: Criterion) -> str:
    mark = "<span class='pass'>pass</span>" if c.passed else "<span class='fail'>fail</span>"
    return (
        f"<tr><td>{_e(c.name)}</td><td class='num'>{_num(c.value)}</td>"
        f"<td>{_e(c.comparison)} {_num(c.threshold)}</td><td>{mark}</td><td>{_e(c.detail)}</td></tr>"
    )


def _criteria(criteria: Sequence[Criterion]) -> str:
    if not criteria:
        return "<p class='null'>no success criteria in summary.json</p>"
    head = "<tr><th>criterion</th><th>value</th><th>needs</th><th>result</th><th>detail</th></tr>"
    n_pass = sum(1 for c in criteria if c.passed)
    verdict = (
        "<span class='pass'>all passed</span>"
        if n_pass == len(criteria)
        else f"<span class='fail'>{n_pass} of {len(criteria)} passed</span>"
    )
    return f"<p>{verdict}</p><table>{head}{''.join(map(_criterion_row, criteria))}</table>"


def _header(summary: Summary, state: Any, nav: str) -> list[str]:
    """The page's head, title line, subtitle (the run and its analysis) and navigation."""
    cfg = summary.config
    title = f"groklab report: {summary.run}"
    return [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>{_e(cfg.name)}: op {_e(cfg.op)}, p = {_e(cfg.p)}, train fraction {_e(cfg.train_frac)}, "
        f"seed {_e(cfg.seed)}; state {_e(state)}; analysed at step {_e(summary.analysed_step)} over "
        f"{_e(summary.n_checkpoints)} checkpoints</p>",
        nav,
    ]


def _nav(groups: Mapping[str, str]) -> str:
    links = [("numbers", "key numbers"), ("criteria", "criteria"), ("config", "config")]
    links += [(f"g-{g}", label) for g, label in groups.items()]
    return "<nav>" + "".join(f"<a href='#{_e(a)}'>{_e(label)}</a>" for a, label in links) + "</nav>"


def _figure(f: ReportFigure) -> str:
    data = base64.b64encode(f.data).decode("ascii")
    src = f"data:{MIME.get(f.kind, 'image/png')};base64,{data}"
    return (
        f"<figure id='fig-{_e(f.name)}'><img alt='{_e(f.title)}' src='{src}'><figcaption><b>{_e(f.title)}.</b> "
        f"{_e(f.caption)} <span class='null'>({_e(f.name)}.{_e(f.kind)})</span></figcaption></figure>"
    )


def _figure_sections(figures: Sequence[ReportFigure], groups: Mapping[str, str]) -> list[str]:
    parts = []
    for g, label in groups.items():
        parts.append(f"<h2 id='g-{_e(g)}'>{_e(label)}</h2>")
        parts += [_figure(f) for f in figures if f.group == g]
    return parts


def _skipped(skipped: Sequence[Mapping[str, str]]) -> list[str]:
    if not skipped:
        return []
    rows = [f"<tr><td>{_e(s.get('title') or s.get('name'))}</td><td>{_e(s.get('reason'))}</td></tr>" for s in skipped]
    head = "<h2 id='skipped'>Figures not drawn for this run</h2><table><tr><th>figure</th><th>reason</th></tr>"
    return [head, *rows, "</table>"]


def lens_rows(lenses: Any, llc: Any, metrics: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Rows of the "Newer lenses" table (DESIGN section 6): clock vs pizza at the last measured step,
    AGOP circulant fractions against their initialisation value, LLC per snapshot with its sampler
    settings, softmax collapse of the training split."""
    rows: list[tuple[str, str]] = []
    if lenses is not None:
        done = [p for p in lenses.points if p.gradient_symmetricity is not None]
        if done:
            last = done[-1]
            rows.append((f"gradient symmetricity / distance irrelevance (step {last.step}, attn_rate {lenses.attn_rate:g})",
                         f"{_num(last.gradient_symmetricity, 3)} / {_num(last.distance_irrelevance, 3)}"))  # fmt: skip
        for p in lenses.points:
            if p.agop is not None:
                rows.append((f"AGOP circulant fraction a-a / b-b / a-b, step {p.step} (phi order)",
                             f"{_num(p.agop.aa, 3)} / {_num(p.agop.bb, 3)} / {_num(p.agop.ab, 3)}"))  # fmt: skip
        for key, why in lenses.null_reasons.items():
            rows.append((f"{key}: not measured", why))
    if llc is not None:
        st = llc.settings
        rows.append(("LLC sampler (devinterp SGLD, train split, float64)",
                     f"eps {st['epsilon']:g}, n_beta {st['n_beta']:g}, gamma {st['gamma']:g}, "
                     f"{int(st['chains'])} chains x {int(st['draws'])} draws, burn-in {int(st['burnin'])}; "
                     f"{llc.seconds_per_snapshot:.1f} s per snapshot"))  # fmt: skip
        for p in llc.points:
            rows.append(
                (f"LLC at step {p.step}", f"{p.mean:.2f} +- {p.std:.2f} (MALA acceptance {_num(p.acceptance, 2)})")
            )
    collapse = [(r["step"], r["softmax_collapse"]) for r in metrics if r.get("softmax_collapse") is not None]
    if collapse:
        peak = max(collapse, key=lambda sv: sv[1])
        rows.append(("softmax collapse of the training split (float32): last / max (step)",
                     f"{_num(collapse[-1][1], 3)} / {_num(peak[1], 3)} ({peak[0]})"))  # fmt: skip
    return rows


def render_report(
    summary: Summary,
    config_yaml: str,
    figures: Sequence[ReportFigure],
    skipped: Sequence[Mapping[str, str]] = (),
    ablation: AblationReport | None = None,
    groups: Mapping[str, str] | None = None,
    status: Mapping[str, Any] | None = None,
    lenses: Sequence[tuple[str, str]] = (),
) -> str:
    """The report page (HTML text). ``skipped``: [{name, title, reason}] of figures with no data;
    ``groups``: figure group -> heading, in page order (groups of ``figures`` not in it are added);
    ``status``: the run's status.json, whose state is shown (else the state the analysis saw);
    ``lenses``: the rows of :func:`lens_rows`."""
    order = dict(groups or {})
    for f in figures:
        order.setdefault(f.group, f.group)
    shown = {g: label for g, label in order.items() if any(f.group == g for f in figures)}
    state = (status or {}).get("state", summary.state)
    parts = _header(summary, state, _nav(shown))
    parts += [f"<p class='warn'>{_e(w)}</p>" for w in summary.warnings]
    parts += [
        "<h2 id='numbers'>Key numbers</h2>",
        _key_numbers(summary, ablation),
        "<h3>Phases</h3>",
        _phases(summary.phases),
        "<h2 id='criteria'>Success criteria</h2>",
        _criteria(summary.criteria),
        *(["<h2 id='lenses'>Newer lenses</h2>", _rows(lenses)] if lenses else []),
        "<h2 id='config'>Config</h2>",
        f"<pre>{_e(config_yaml)}</pre>",
    ]
    parts += _figure_sections(figures, shown)
    parts += _skipped(skipped)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _report_figures(run: Run, index: Mapping[str, Any]) -> list[ReportFigure]:
    """The figures listed in figures/index.json with their bytes; RunError names a missing file."""
    figures = []
    for f in index.get("figures", []):
        path = run.figures_dir / f["file"]
        try:
            data = path.read_bytes()
        except OSError:
            raise RunError(f"{path}: missing (run `groklab figures {run.path}` again)") from None
        figures.append(ReportFigure(f["name"], f["group"], f["title"], f["caption"], f["kind"], data))
    return figures


def run_report(run: Run) -> str:
    """The report of an analysed run whose figures were drawn; RunError names what is missing."""
    from groklab.analysis.lenses import read_lens_record
    from groklab.plots.registry import GROUPS

    analysis = run.analysis
    index = run.figure_index()
    if index is None:
        raise RunError(f"{run.figures_dir}: no index.json (run `groklab figures {run.path}`)")
    figures = _report_figures(run, index)
    config = to_yaml(run.config)  # the resolved config, read (and checked) through the one reader
    rows = lens_rows(analysis.lenses, read_lens_record(run, "llc"), run.metric_records())
    return render_report(
        analysis.summary, config, figures, index.get("skipped", []), analysis.ablation, GROUPS, run.status(), rows
    )
