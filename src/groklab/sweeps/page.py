"""One self-contained HTML page for a sweep: counts, the phase diagrams (PNG embedded as base64),
the summary table and the spec. Computed from the sweep directory's runs, so it is current even
while the sweep is still running."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import yaml

from groklab.conventions import event_rule
from groklab.summary import format_value
from groklab.sweeps.aggregate import SUMMARY_COLUMNS, read_sweep, sweep_rows
from groklab.sweeps.figures import phase_diagrams

__all__ = ["sweep_page"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td.l{text-align:left}
tr.failed{background:#fde8e8}tr.interrupted,tr.running{background:#fff6dc}tr.pending{color:#888}
.figs img{max-width:48%;margin:0 1% 1em 0;border:1px solid #eee}
pre{background:#f7f7f7;padding:1em;overflow:auto}
"""


def sweep_page(sweep_dir: Path, title: str | None = None) -> str:
    """The HTML text of the sweep page for ``sweep_dir`` (a directory with ``sweep.yaml``).

    Raises :class:`groklab.sweeps.spec.SweepError` (a ``ConfigError``) if it is not a sweep.
    """
    sweep_dir = Path(sweep_dir)
    spec, points = read_sweep(sweep_dir)
    rows = sweep_rows(sweep_dir, points)
    varied = [*(spec.get("grid") or {}), *(spec.get("zip") or {})]
    name = str(spec.get("name") or sweep_dir.name)
    title = title or f"sweep {name}"

    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    grokked = sum(1 for r in rows if r.get("grokking_step") is not None)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(str(sweep_dir))}: {len(rows)} points, "
        + ", ".join(f"{n} {_e(s)}" for s, n in sorted(counts.items()))
        + f"; {grokked} grokked ({_e(event_rule('grokking_step'))}).</p>",
        "<h2>Phase diagrams</h2><div class='figs'>",
    ]
    for stem, fig in phase_diagrams(rows, varied, name).items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        data = base64.b64encode(buf.getvalue()).decode()
        parts.append(f"<img alt='{_e(stem)}' title='{_e(stem)}' src='data:image/png;base64,{data}'>")
    parts.append("</div><h2>Points</h2>")
    parts.append(_table(rows, varied))
    parts.append("<h2>Spec</h2><pre>" + _e(yaml.safe_dump(spec, sort_keys=False)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(rows: list[dict[str, Any]], varied: list[str]) -> str:
    cols = ["run_id", *varied, *SUMMARY_COLUMNS]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = "".join(
            f"<td class='l'>{_e(_fmt(r.get(c)))}</td>"
            if c in ("run_id", "state", "error")
            else f"<td>{_e(_fmt(r.get(c)))}</td>"
            for c in cols
        )
        body.append(f"<tr class='{_e(str(r.get('state')))}'>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fmt(v: Any) -> str:
    return format_value(v, empty="", float_spec=".4g")


def _e(s: str) -> str:
    return html.escape(s, quote=True)
