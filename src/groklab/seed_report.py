"""One self-contained HTML page for the seeds of one config (DESIGN section 9): the aggregate's
table (median, IQR, 95% CI with its coverage, per-seed values), the seed-curves figure embedded as
a data URI, and links to each member's own report.

Like :mod:`groklab.report` (whose style and helpers it shares), :func:`render_seed_report` is a pure
function of the record and the image bytes; writing the page is the CLI's job.
"""

from __future__ import annotations

from groklab.records import SeedAggregate, SeedMember, SeedQuantity
from groklab.report import _STYLE, ReportFigure, _e, _figure, _num

__all__ = ["render_seed_report"]

_EXTRA_STYLE = "td.seeds{font-size:13px;max-width:380px}details{font-size:13px}"


def _value(v: float | None, unit: str) -> str:
    """A statistic: steps and counts in full (a median of two may end in .5), others to 4 digits."""
    if v is not None and unit in ("steps", "count"):
        return _e(int(v) if float(v).is_integer() else f"{v:.1f}")
    return _num(v)


def _per_seed(q: SeedQuantity) -> str:
    cells = []
    for seed, v in q.values.items():
        if v is not None:
            cells.append(f"{seed}: {_value(v, q.unit)}")
        elif seed in q.censored_at:
            cells.append(f"{seed}: &gt; {_value(q.censored_at[seed], q.unit)}")
        else:
            cells.append(f"{seed}: <span class='null'>left out</span>")
    reasons = "".join(f"<li>seed {seed}: {_e(why)}</li>" for seed, why in q.value_reasons.items())
    details = f"<details><summary>why some values are missing</summary><ul>{reasons}</ul></details>" if reasons else ""
    return ", ".join(cells) + details


def _quantity_row(q: SeedQuantity) -> str:
    iqr = f"{_value(q.q1, q.unit)} to {_value(q.q3, q.unit)}"
    coverage = "" if q.ci_coverage is None else f" <span class='null'>(coverage {q.ci_coverage:.3f})</span>"
    ci = f"{_value(q.ci_low, q.unit)} to {_value(q.ci_high, q.unit)}{coverage}"
    over = "all members" if q.over == "all" else "members that grokked"
    note = f"<span class='null'>{_e(q.reason)}</span>" if q.reason else ""
    return (
        f"<tr id='q-{_e(q.name)}'><td>{_e(q.label)} <span class='null'>({_e(q.unit)}; {over})</span></td>"
        f"<td class='num n'>{q.n}</td><td class='num censored'>{q.n_censored}</td>"
        f"<td class='num left-out'>{q.n_left_out}</td><td class='num median'>{_value(q.median, q.unit)}</td>"
        f"<td class='num iqr'>{iqr}</td><td class='num ci'>{ci}</td><td>{note}</td>"
        f"<td class='seeds'>{_per_seed(q)}</td></tr>"
    )


def _quantities(agg: SeedAggregate) -> str:
    head = (
        "<tr><th>quantity</th><th>n</th><th>censored</th><th>left out</th><th>median</th><th>IQR (q1 to q3)</th>"
        f"<th>CI of the median ({agg.ci_level:.0%} where n allows; exact coverage)</th><th>why a value is n/a</th><th>per seed</th></tr>"
    )
    return f"<table>{head}{''.join(_quantity_row(q) for q in agg.quantities)}</table>"


def _member_row(m: SeedMember) -> str:
    link = (
        f"<a href='{_e(m.report)}'>{_e(m.run)}</a>"
        if m.report
        else f"{_e(m.run)} <span class='null'>(no report)</span>"
    )
    grokked = "<span class='null'>n/a</span>" if m.grokked is None else ("yes" if m.grokked else "no")
    keys = _e(m.key_frequencies) if m.included else "<span class='null'>n/a</span>"
    note = "" if m.included else f"<span class='fail'>left out</span>: {_e(m.reason or 'no reason recorded')}"
    return (
        f"<tr id='m-{m.seed}'><td class='num'>{m.seed}</td><td>{link}</td><td>{_e(m.state)}</td><td>{grokked}</td>"
        f"<td class='num'>{_num(m.last_step)}</td><td>{keys}</td><td>{note}</td></tr>"
    )


def _members(agg: SeedAggregate) -> str:
    head = "<tr><th>seed</th><th>run</th><th>state</th><th>grokked</th><th>last step</th><th>key frequencies</th><th></th></tr>"
    return f"<table>{head}{''.join(_member_row(m) for m in agg.members)}</table>"


def _grokked_line(agg: SeedAggregate) -> str:
    left_out = len(agg.members) - agg.n_included
    fraction = (
        f"{agg.n_grokked} of {agg.n_included} grokked (fraction {agg.fraction_grokked:.3g})"
        if agg.fraction_grokked is not None
        else f"fraction grokked n/a: {_e(agg.fraction_grokked_reason)}"
    )
    extra = f"; <span class='fail'>{left_out} left out</span> (see Members)" if left_out else ""
    return f"<p id='grokked'>{len(agg.members)} members (seeds {_e(agg.seeds)}); {fraction}{extra}.</p>"


def render_seed_report(agg: SeedAggregate, figure: ReportFigure | None = None) -> str:
    """The page (HTML text) of an aggregate over seeds, with the seed-curves figure when given."""
    title = f"groklab seeds: {agg.name} ({len(agg.members)} seeds)"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_STYLE}{_EXTRA_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>op {_e(agg.op)}, p = {_e(agg.p)}, train fraction {_e(agg.train_frac)}; member S has "
        "seed S and split seed S</p>",
        "<nav><a href='#numbers'>statistics</a><a href='#curves'>curves</a><a href='#members'>members</a></nav>",
        *(f"<p class='warn'>{_e(w)}</p>" for w in agg.warnings),
        "<h2 id='numbers'>Statistics over seeds</h2>",
        _grokked_line(agg),
        _quantities(agg),
        f"<p class='sub'>Median and quartiles (type 1: order statistics of ranks ceil(n/4) and ceil(3n/4)); "
        f"CI: {_e(agg.ci_method)}. Censored: the event did not happen within the run's budget; the value is "
        "only known to be larger (&gt; bound per seed) and sorts above every observed value. Left out: not in "
        "the statistic (the per-seed reasons say why). A statistic that censoring makes unknown is n/a, with "
        "the reason.</p>",
        "<h2 id='curves'>Curves</h2>",
        _figure(figure) if figure is not None else "<p class='null'>no figure</p>",
        "<h2 id='members'>Members</h2>",
        _members(agg),
        "</body></html>\n",
    ]
    return "\n".join(parts)
