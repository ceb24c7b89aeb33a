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


def _key_numbers(summary: Mapping[str, Any], ablation: Mapping[str, Any] | None) -> str:
    ev = summary.get("events") or {}
    why = ev.get("reasons") or {}
    final = summary.get("final") or {}
    ab = summary.get("ablation") or {}
    control = (((ablation or {}).get("frequency") or {}).get("control")) or {}
    control_why = ab.get("reason") or control.get("note") or ("no control draws" if control else None)
    by_neurons = summary.get("key_frequencies_by_neurons") or []
    agree = summary.get("key_frequency_agreement") or {}
    rows = [
        (
            "memorization step (train acc >= 0.99)",
            _or_reason(ev.get("memorization_step"), why.get("memorization_step")),
        ),
        ("grokking step (test acc >= 0.95, held)", _or_reason(ev.get("grokking_step"), why.get("grokking_step"))),
        ("delay (steps)", _or_reason(ev.get("delay"), why.get("delay"))),
        ("final step", _num(final.get("step"))),
        ("final train / test accuracy", f"{_num(final.get('train_acc'))} / {_num(final.get('test_acc'))}"),
        ("final train / test loss (nats)", f"{_num(final.get('train_loss'))} / {_num(final.get('test_loss'))}"),
        (
            "key frequencies (used)",
            _e(summary.get("key_frequencies"))
            + f" <span class='null'>from {_e(summary.get('key_frequency_source'))}</span>",
        ),
        ("by neuron clusters (k: neurons)", _e(", ".join(f"{c['k']}: {c['count']}" for c in by_neurons) or "none")),
        ("by embedding norm (>= 1/4 of max)", _e(summary.get("embedding_key_frequencies"))),
        ("agreement of the two lists (Jaccard)", _num(agree.get("jaccard"), 3)),
        ("baseline test accuracy", _num(ab.get("baseline_test_acc"))),
        (
            "accuracy drop, key frequencies removed (points)",
            _or_reason(ab.get("key_frequency_acc_drop"), ab.get("reason"), 3),
        ),
        (
            "accuracy drop, random frequencies removed (points, mean)",
            _or_reason(ab.get("control_acc_drop_mean"), control_why, 3),
        ),
    ]
    cum = ((ablation or {}).get("neurons") or {}).get("cumulative") or {}
    rows.append(
        (
            "neurons to ablate (by importance) for test acc < 50%",
            _or_reason(ab.get("neurons_to_break"), cum.get("n_to_below_half_reason")),
        )
    )
    for c in ((ablation or {}).get("neurons") or {}).get("clusters") or []:
        rows.append(
            (f"cluster k = {c['k']} ({c['size']} neurons) ablated: test acc", f"{_num(c['ablated']['test_acc'])} "
             f"<span class='null'>(random groups: {_num(c['random']['test_acc']['mean'])})</span>"),
        )  # fmt: skip
    for h in (ablation or {}).get("heads") or []:
        rows.append((f"head {h['layer']}.{h['head']} ablated: accuracy drop (points)", _num(h["acc_drop"], 3)))
    return _rows(rows)


def _phases(summary: Mapping[str, Any]) -> str:
    ph = summary.get("phases") or {}
    why = ph.get("reasons") or {}
    rows = [
        (
            "memorization",
            f"{_num(ph.get('first_step'))} to {_or_reason(ph.get('memorization_end'), why.get('memorization_end'))}",
        ),
        (
            "circuit formation",
            f"{_num(ph.get('memorization_end'))} to {_or_reason(ph.get('cleanup_start'), why.get('cleanup_start'))}",
        ),
        ("cleanup", f"{_num(ph.get('cleanup_start'))} to {_or_reason(ph.get('cleanup_end'), why.get('cleanup_end'))}"),
    ]
    rules = ph.get("rules") or {}
    notes = "".join(f"<li><b>{_e(k.replace('_', ' '))}</b>: {_e(v)}</li>" for k, v in rules.items())
    return _rows(rows) + (f"<details><summary>phase rules</summary><ul>{notes}</ul></details>" if notes else "")


def _criteria(summary: Mapping[str, Any]) -> str:
    crit = summary.get("criteria") or []
    if not crit:
        return "<p class='null'>no success criteria in summary.json</p>"
    head = "<tr><th>criterion</th><th>value</th><th>needs</th><th>result</th><th>detail</th></tr>"
    body = []
    for c in crit:
        mark = "<span class='pass'>pass</span>" if c.get("passed") else "<span class='fail'>fail</span>"
        body.append(
            f"<tr><td>{_e(c.get('name'))}</td><td class='num'>{_num(c.get('value'))}</td>"
            f"<td>{_e(c.get('comparison'))} {_num(c.get('threshold'))}</td><td>{mark}</td><td>{_e(c.get('detail') or '')}</td></tr>"
        )
    n_pass = sum(1 for c in crit if c.get("passed"))
    verdict = (
        "<span class='pass'>all passed</span>"
        if n_pass == len(crit)
        else f"<span class='fail'>{n_pass} of {len(crit)} passed</span>"
    )
    return f"<p>{verdict}</p><table>{head}{''.join(body)}</table>"


def render_report(
    summary: Mapping[str, Any],
    config_yaml: str,
    figures: Sequence[ReportFigure],
    skipped: Sequence[Mapping[str, str]] = (),
    ablation: Mapping[str, Any] | None = None,
    groups: Mapping[str, str] | None = None,
    status: Mapping[str, Any] | None = None,
) -> str:
    """The report page (HTML text). ``skipped``: [{name, title, reason}] of figures with no data."""
    cfg = summary.get("config") or {}
    title = f"groklab report: {summary.get('run', '')}"
    groups = dict(groups or {})
    for f in figures:
        groups.setdefault(f.group, f.group)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>{_e(cfg.get('name'))}: op {_e(cfg.get('op'))}, p = {_e(cfg.get('p'))}, "
        f"train fraction {_e(cfg.get('train_frac'))}, seed {_e(cfg.get('seed'))}; state {_e((status or {}).get('state', summary.get('state')))}; "
        f"analysed at step {_e(summary.get('analysed_step'))} over {_e(summary.get('n_checkpoints'))} checkpoints</p>",
        "<nav><a href='#numbers'>key numbers</a><a href='#criteria'>criteria</a><a href='#config'>config</a>"
        + "".join(
            f"<a href='#g-{_e(g)}'>{_e(label)}</a>" for g, label in groups.items() if any(f.group == g for f in figures)
        )
        + "</nav>",
    ]
    for w in summary.get("warnings") or []:
        parts.append(f"<p class='warn'>{_e(w)}</p>")
    parts += [
        "<h2 id='numbers'>Key numbers</h2>",
        _key_numbers(summary, ablation),
        "<h3>Phases</h3>",
        _phases(summary),
        "<h2 id='criteria'>Success criteria</h2>",
        _criteria(summary),
        "<h2 id='config'>Config</h2>",
        f"<pre>{_e(config_yaml)}</pre>",
    ]
    for g, label in groups.items():
        figs = [f for f in figures if f.group == g]
        if not figs:
            continue
        parts.append(f"<h2 id='g-{_e(g)}'>{_e(label)}</h2>")
        for f in figs:
            data = base64.b64encode(f.data).decode("ascii")
            parts.append(
                f"<figure id='fig-{_e(f.name)}'><img alt='{_e(f.title)}' src='data:{MIME.get(f.kind, 'image/png')};base64,{data}'>"
                f"<figcaption><b>{_e(f.title)}.</b> {_e(f.caption)} <span class='null'>({_e(f.name)}.{_e(f.kind)})</span></figcaption></figure>"
            )
    if skipped:
        parts.append(
            "<h2 id='skipped'>Figures not drawn for this run</h2><table><tr><th>figure</th><th>reason</th></tr>"
        )
        parts += [
            f"<tr><td>{_e(s.get('title') or s.get('name'))}</td><td>{_e(s.get('reason'))}</td></tr>" for s in skipped
        ]
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def run_report(run: Run) -> str:
    """The report of an analysed run whose figures were drawn; RunError names what is missing."""
    from groklab.plots.registry import GROUPS

    summary = run.analysis("summary")
    index = run.figure_index()
    if index is None:
        raise RunError(f"{run.figures_dir}: no index.json (run `groklab figures {run.path}`)")
    figures = []
    for f in index.get("figures", []):
        path = run.figures_dir / f["file"]
        try:
            data = path.read_bytes()
        except OSError:
            raise RunError(f"{path}: missing (run `groklab figures {run.path}` again)") from None
        figures.append(ReportFigure(f["name"], f["group"], f["title"], f["caption"], f["kind"], data))
    try:
        ablation = run.analysis("ablation")
    except RunError:
        ablation = None
    return render_report(
        summary, run.config_path.read_text(), figures, index.get("skipped", []), ablation, GROUPS, run.status()
    )
