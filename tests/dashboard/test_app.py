"""The dashboard's pages under Streamlit's AppTest: widgets driven, displayed values checked against
the run's files and against the analysis functions called directly."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from groklab.analysis.basis import basis_of
from groklab.analysis.fourier import embedding_spectrum
from groklab.analysis.grokking import grokking_events
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.views import frequency_plane
from groklab.conventions import COLORS, PHASE_COLORS, event_rule
from groklab.runs import Run

APP = str(Path(__file__).resolve().parents[2] / "src" / "groklab" / "dashboard" / "app.py")
LABELS = [
    "bad_config", "broken_metrics", "early", "grokked", "p13", "sub_run",
    "sweep_wd/runs/weight_decay=1.0__aaaa1111", "sweep_wd/runs/weight_decay=2.0__bbbb2222", "torn",
]  # fmt: skip


def app(runs_dir: Path | str, page: str = "Runs", run: str | None = None, tab: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["runs_dir"] = str(runs_dir)
    at.session_state["page"] = page
    if run is not None:
        at.session_state["run"] = run
    if tab is not None:
        at.session_state["run_tab"] = tab
    return at.run()


def open_tab(at: AppTest, name: str) -> AppTest:
    """Open a tab of the run page (its tabs run lazily: only the open one is computed)."""
    assert name in [t.label for t in at.tabs]
    at.session_state["run_tab"] = name
    return at.run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly figures on the page by title (their JSON, data as plain lists)."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out[spec["layout"]["title"]["text"]] = spec
    return out


def chart(at: AppTest, prefix: str) -> dict:
    found = [spec for title, spec in charts(at).items() if title.startswith(prefix)]
    assert len(found) == 1, (prefix, list(charts(at)))
    return found[0]


def metrics_shown(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def grokking_step(dash_runs: Path) -> int:
    """The grokked run's grokking step from its metrics (the exact step varies with the CPU's kernels)."""
    step = grokking_events(Run(dash_runs / "grokked").metric_records()).grokking_step
    assert step is not None
    return step


def messages(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in (at.error, at.warning, at.info) for e in kind)


# -- page 1: runs table -------------------------------------------------------------------------------
def test_runs_table_lists_every_run_and_filters(dash_runs):
    at = app(dash_runs)
    no_exception(at)
    df = at.dataframe[0].value
    assert sorted(df["run"]) == LABELS
    unreadable = set(df.loc[df["state"] == "unreadable", "run"])
    assert unreadable == {"bad_config", "broken_metrics"}
    text = messages(at)
    assert "bad_config: unreadable" in text and "not valid YAML" in text
    assert "broken_metrics: unreadable" in text and "line 6 is not valid JSON" in text
    assert "early: status says running, but no process holds the run's lock" in text
    assert "torn: analysis unreadable" in text

    at.multiselect(key="f_op").set_value(["sub"]).run()
    assert list(at.dataframe[0].value["run"]) == ["sub_run"]
    at.multiselect(key="f_op").set_value([])
    at.multiselect(key="f_p").set_value([13]).run()
    assert list(at.dataframe[0].value["run"]) == ["p13"]
    at.multiselect(key="f_p").set_value([])
    at.radio(key="f_grokked").set_value("grokked").run()
    grokked = {
        label
        for label in LABELS
        if label not in unreadable
        and grokking_events(Run(dash_runs / label).metric_records()).grokking_step is not None
    }
    assert set(at.dataframe[0].value["run"]) == grokked == {"grokked", "p13", "torn", LABELS[6]}
    at.radio(key="f_grokked").set_value("not grokked")
    at.multiselect(key="f_state").set_value(["completed"]).run()
    assert set(at.dataframe[0].value["run"]) == {"sub_run", LABELS[7]}
    assert "2 of 9 runs" in at.caption[0].value
    no_exception(at)


def test_missing_and_empty_runs_dir_say_so(tmp_path):
    at = app(tmp_path / "nowhere")
    no_exception(at)
    assert "does not exist" in at.error[0].value and "nowhere" in at.error[0].value
    (tmp_path / "empty").mkdir()
    at = app(tmp_path / "empty")
    no_exception(at)
    assert "is empty" in at.warning[0].value


# -- page 2: one run ------------------------------------------------------------------------------------
def test_run_page_key_numbers_equal_the_analysis_summary(dash_runs):
    at = app(dash_runs, "Run")
    assert "Choose one of the 9 runs" in messages(at)
    at.selectbox(key="run").set_value("grokked").run()
    no_exception(at)
    assert not at.error
    analysis = Run(dash_runs / "grokked").analysis
    ev, abl = analysis.events, analysis.summary.ablation
    shown = metrics_shown(at)
    assert shown["Grokking step"] == str(ev.grokking_step) == str(grokking_step(dash_runs))
    assert shown["Memorization step"] == str(ev.memorization_step)
    assert shown["Delay (steps)"] == str(ev.delay)
    assert shown["Key frequencies"] == ", ".join(map(str, analysis.key_frequencies))
    assert shown["Key-frequency ablation drop"] == f"{abl.key_frequency_acc_drop:.1f} pts"
    assert shown["Random-frequency control drop"] == f"{abl.control_acc_drop_mean:.1f} pts"
    assert shown["Neurons to break (< 50%)"] == str(abl.neurons_to_break)
    helps = {m.label: m.proto.help for m in at.metric}
    for label, name in (("Memorization step", "memorization_step"), ("Grokking step", "grokking_step")):
        assert helps[label] == event_rule(name)  # both events happened: the rule, not a reason
    assert "analysis/summary.json" in " ".join(c.value for c in at.caption)
    assert "Fourier basis: Z_17 (identity)." in [c.value for c in at.caption]
    assert helps["Key frequencies"].startswith("frequencies k of Z_17 (identity), from neuron clusters; ")

    curves = chart(at, "Training curves")
    metrics = Run(dash_runs / "grokked").metric_records()
    lines = {t["name"]: t for t in curves["data"]}
    assert lines["test acc"]["x"] == [r["step"] for r in metrics if r["step"] > 0]  # log axis: step 0 left out
    assert lines["test acc"]["y"] == [r["test_acc"] for r in metrics if r["step"] > 0]
    assert lines["train loss"]["y"] == [r["train_loss"] for r in metrics if r["step"] > 0]
    assert {n: lines[n]["line"]["color"] for n in ("train acc", "test acc")} == {
        "train acc": COLORS["train"],
        "test acc": COLORS["test"],
    }
    assert curves["layout"]["xaxis"]["type"] == "log"
    marks = {t["name"]: t["x"] for t in curves["data"] if t["name"].startswith(("memorized", "grokked"))}
    assert marks == {
        f"memorized (step {ev.memorization_step})": [ev.memorization_step] * 2,
        f"grokked (step {ev.grokking_step})": [ev.grokking_step] * 2,
    }
    phases = analysis.phases
    shaded = [(s["fillcolor"], s["x0"], s["x1"]) for s in curves["layout"]["shapes"]]
    expected = [(PHASE_COLORS[n], max(a, 1), b) for n, a, b in phases.spans() if b > max(a, 1)]  # log axis: from 1
    assert expected and shaded == [span for span in expected for _panel in (1, 2)]  # each phase in both panels
    assert phases.spans()[0][0] == "memorization" and shaded[0][2] == phases.memorization_end
    progress = chart(at, "Progress measures")
    measured = {t["name"]: t for t in progress["data"]}
    kept = [r for r in analysis.progress if r.step and r.restricted_loss is not None]
    assert measured["restricted loss"]["x"] == [r.step for r in kept]
    assert measured["restricted loss"]["y"] == [r.restricted_loss for r in kept]
    assert measured["Gini W_L"]["y"] == [r.gini_unembed for r in analysis.progress if r.step]
    assert not [t for t in charts(at) if "ablation" in t.lower() or "spectrum" in t.lower()]  # other tabs: lazy
    at.toggle(key="log_x").set_value(False).run()
    curves = chart(at, "Training curves")
    test_acc = next(t for t in curves["data"] if t["name"] == "test acc")
    assert test_acc["x"][0] == 0
    assert curves["layout"]["shapes"][0]["x0"] == phases.first_step == 0

    open_tab(at, "Ablations")
    no_exception(at)
    ablation = analysis.ablation
    assert ablation.frequency is not None
    freq_chart = chart(at, "Frequency ablation")
    freq = freq_chart["data"]
    control = ablation.frequency.control
    assert freq[0]["y"] == [
        ablation.frequency.baseline.test_acc,
        ablation.frequency.key.test_acc,
        control.test_acc_mean,
    ]
    assert freq_chart["layout"]["xaxis"]["title"]["text"].startswith("frequencies of Z_17 (identity) removed")
    assert freq[1]["y"] == [d.test_acc for d in control.draws]
    cumulative = chart(at, "Cumulative neuron ablation")["data"][2]
    assert cumulative["x"] == ablation.neurons.cumulative.n_ablated
    assert cumulative["y"] == ablation.neurons.cumulative.test_acc
    clusters = chart(at, "Neuron cluster ablation")["data"]
    assert clusters[0]["y"] == [c.ablated.test_acc for c in ablation.neurons.clusters]
    assert clusters[1]["y"] == [c.random.test_acc.mean for c in ablation.neurons.clusters]
    assert ablation.heads is not None
    assert chart(at, "Head ablation")["data"][0]["y"] == [h.test_acc for h in ablation.heads]
    assert "Training curves" not in charts(at)
    assert metrics_shown(at)["Grokking step"] == str(ev.grokking_step)  # the key numbers stay above the tabs


def test_charts_carry_the_figure_registry_captions(dash_runs):
    """Under each chart, what to look for in the figure registry's words (the report's captions)."""
    from groklab import plots

    expected = {
        "Training": ("dynamics_accuracy", "dynamics_progress"),
        "At a checkpoint": ("fourier_embedding_spectrum", "embedding_circles", "neuron_cluster_sizes"),
        "Ablations": ("ablation_frequencies", "ablation_cumulative", "ablation_clusters", "ablation_heads"),
    }
    at = app(dash_runs, "Run", "grokked")
    for tab, names in expected.items():
        open_tab(at, tab)
        no_exception(at)
        captions = " ".join(c.value for c in at.caption)
        for name in names:
            assert plots.caption(name) in captions, (tab, name)


def _direct(run_dir: Path, step: int) -> tuple[list[float], dict[int, int], torch.Tensor]:
    """Spectrum, cluster sizes and token embeddings at a saved step, computed here without the dashboard."""
    run = Run(run_dir)
    model = run.model(step)
    neurons = analyze_neurons(model, run.dataset)
    W = model.W_E_tokens.detach()
    return embedding_spectrum(W, basis_of(run.dataset)).tolist(), {c.k: len(c.neurons) for c in neurons.clusters}, W


def test_checkpoint_slider_redraws_spectrum_and_clusters(dash_runs):
    at = app(dash_runs, "Run", "grokked", tab="At a checkpoint")
    slider = at.select_slider(key="ckpt_step:grokked")
    steps = Run(dash_runs / "grokked").steps
    assert slider.value == steps[-1]
    keys = Run(dash_runs / "grokked").analysis.key_frequencies[:6]  # the circles drawn by default
    assert keys
    basis = basis_of(Run(dash_runs / "grokked").dataset)
    for step in (200, steps[-1], 0):
        at.select_slider(key="ckpt_step:grokked").set_value(step).run()
        no_exception(at)
        spectrum, clusters, W_E = _direct(dash_runs / "grokked", step)
        spec = chart(at, f"Embedding spectrum at step {step}")
        assert spec["layout"]["xaxis"]["title"]["text"] == "frequency k of Z_17 (identity)"
        bars = spec["data"][0]
        assert bars["x"] == list(range(1, 9))
        assert torch.allclose(torch.tensor(bars["y"]), torch.tensor(spectrum), rtol=1e-6, atol=1e-9)
        assert [k for k, c in zip(bars["x"], bars["marker"]["color"], strict=True) if c == COLORS["key"]] == keys
        sizes = chart(at, f"Neuron clusters at step {step}")["data"][0]
        assert {k: n for k, n in zip(sizes["x"], sizes["y"], strict=True) if n} == clusters
        circles = chart(at, f"Tokens in each key frequency's plane at step {step}")
        assert [t["name"] for t in circles["data"]] == [f"k = {k}" for k in keys]
        for k, trace in zip(keys, circles["data"], strict=True):
            xy = torch.tensor([trace["x"], trace["y"]], dtype=torch.float64).T
            assert torch.allclose(xy, frequency_plane(W_E, k, basis), atol=1e-6)
            assert trace["text"] == [str(t) for t in range(17)] and trace["marker"]["color"] == list(range(17))
    assert metrics_shown(at)["Key frequencies at this step"] == "none"  # step 0: random init
    assert "No key frequencies at this step: no neuron cluster" in " ".join(c.value for c in at.caption)
    assert "Frequencies k of Z_17 (identity)." in [c.value for c in at.caption]
    at.multiselect(key="circle_ks:grokked").set_value([1, 8]).run()
    assert [t["name"] for t in chart(at, "Tokens in each")["data"]] == ["k = 1", "k = 8"]


def test_checkpoint_of_a_mul_run_is_in_the_discrete_log_basis(mlp_mul_run, tmp_path):
    """mul mod 17: the spectrum's axis names Z_16 under the discrete log base 3, its 8 bars are the
    spectrum in that basis, and a circle holds the 16 tokens of the group at their plane coordinates
    (token 0 has no place); with no key frequencies the page says why."""
    shutil.copytree(mlp_mul_run, tmp_path / "mul")
    run = Run(tmp_path / "mul")
    at = app(tmp_path, "Run", "mul", tab="At a checkpoint")
    no_exception(at)
    step = run.steps[-1]
    spec = chart(at, f"Embedding spectrum at step {step}")
    assert spec["layout"]["xaxis"]["title"]["text"] == "frequency k of Z_16 (discrete log base 3)"
    spectrum, _, W_E = _direct(run.path, step)
    assert spec["data"][0]["x"] == list(range(1, 9)) and len(spectrum) == 8
    assert torch.allclose(torch.tensor(spec["data"][0]["y"]), torch.tensor(spectrum), rtol=1e-6, atol=1e-9)
    summary = run.analysis.summary
    assert summary.key_frequencies == [] and summary.key_frequencies_reason
    assert metrics_shown(at)["Key frequencies"] == "none"
    helps = {m.label: m.proto.help for m in at.metric}
    assert helps["Key frequencies"].startswith(summary.key_frequencies_reason)
    assert "Fourier basis: Z_16 (discrete log base 3)." in [c.value for c in at.caption]
    assert not [t for t in charts(at) if t.startswith("Tokens in each")]  # no key frequencies: none by default
    at.multiselect(key="circle_ks:mul").set_value([5]).run()
    no_exception(at)
    (trace,) = chart(at, "Tokens in each")["data"]
    basis = basis_of(run.dataset)
    assert trace["text"] == [str(t) for t in range(1, 17)]
    assert trace["marker"]["color"] == basis.map.phi_a[1:].tolist()  # coloured by log_3 t
    xy = torch.tensor([trace["x"], trace["y"]], dtype=torch.float64).T
    assert torch.allclose(xy, frequency_plane(W_E, 5, basis)[1:], atol=1e-6)


def test_damaged_runs_show_clear_messages_and_the_rest_works(dash_runs):
    at = app(dash_runs, "Run", "torn")
    no_exception(at)
    assert "summary.json: not valid JSON" in messages(at)
    shown = metrics_shown(at)
    grokked = str(grokking_step(dash_runs))
    assert shown["Grokking step"] == grokked  # from metrics.jsonl: the torn last line is skipped
    assert "not analysed" == shown["Key frequencies"]
    chart(at, "Training curves")
    open_tab(at, "At a checkpoint")
    no_exception(at)
    text = messages(at)
    assert "corrupt or truncated checkpoint" in text and "step_0001500.pt" in text
    assert metrics_shown(at)["Grokking step"] == grokked  # the numbers above still work
    at.select_slider(key="ckpt_step:torn").set_value(1400).run()  # an intact checkpoint still works
    chart(at, "Embedding spectrum at step 1400")
    assert "step_0001400.pt" not in messages(at)

    at.selectbox(key="run").set_value("p13").run()
    no_exception(at)
    assert "weights do not fit the run's config" in messages(at)
    assert metrics_shown(at)["Grokking step"] == grokked

    at.selectbox(key="run").set_value("broken_metrics").run()
    no_exception(at)
    assert "line 6 is not valid JSON" in messages(at)

    at.selectbox(key="run").set_value("bad_config").run()
    no_exception(at)
    assert "config.yaml: not valid YAML" in messages(at)

    at.selectbox(key="run").set_value("early").run()
    no_exception(at)
    assert "no process holds the run's lock" in messages(at)
    assert metrics_shown(at)["Grokking step"] == "—"
    chart(at, "Embedding spectrum at step 100")  # its last checkpoint
    open_tab(at, "Ablations")
    assert "No analysis yet: run `groklab analyze" in messages(at)


def test_analysis_of_another_shape_is_named_and_the_page_falls_back(dash_runs, tmp_path):
    """A summary.json without a field of the typed record (written by another groklab version)."""
    run = Run(tmp_path / "old")
    shutil.copytree(dash_runs / "grokked", run.path)
    path = run.analysis_dir / "summary.json"
    record = json.loads(path.read_text())
    del record["events"]
    path.write_text(json.dumps(record))
    at = app(tmp_path)
    no_exception(at)
    assert "old: analysis unreadable" in messages(at) and "no 'events'" in messages(at)
    assert at.dataframe[0].value["analysed"].tolist() == [False]
    at = app(tmp_path, "Run", "old")
    no_exception(at)
    assert "summary: no 'events'" in messages(at)
    shown = metrics_shown(at)
    assert shown["Key frequencies"] == "not analysed"
    assert shown["Grokking step"] == str(grokking_step(dash_runs))  # from metrics.jsonl


def test_training_run_refreshes_with_new_metrics(dash_runs, tmp_path):
    run = Run(tmp_path / "live")
    shutil.copytree(dash_runs / "early", run.path)
    with run.lock():
        run.write_status("running", 100)
        at = app(tmp_path, "Run", "live")
        no_exception(at)
        assert at.toggle(key="auto_refresh").value is True
        assert "(refreshing)" in " ".join(m.value for m in at.markdown)
        before = len(next(t for t in chart(at, "Training curves")["data"] if t["name"] == "test acc")["x"])
        for step in (120, 140):
            run.append_metrics(
                {"step": step, "train_loss": 0.01, "train_acc": 1.0, "test_loss": 0.02, "test_acc": 0.97}
            )
        at.run()
        curves = chart(at, "Training curves")
        assert len(next(t for t in curves["data"] if t["name"] == "test acc")["x"]) == before + 2
        assert metrics_shown(at)["Final test accuracy"] == "0.9700"
        assert metrics_shown(at)["Grokking step"] == "120"
    run.write_status("completed", 140)
    at.run()
    assert [t.key for t in at.toggle] == ["log_x"]  # a finished run does not offer refreshing


# -- page 3: compare ----------------------------------------------------------------------------------
def test_compare_overlays_runs_and_draws_the_sweep(dash_runs):
    at = app(dash_runs, "Compare")
    no_exception(at)
    assert "Choose runs" in messages(at)
    at.multiselect(key="compare_runs").set_value(["grokked", "sub_run", "early"]).run()
    no_exception(at)
    lines = chart(at, "test_acc by run")["data"]
    assert [t["name"] for t in lines] == ["grokked", "sub_run", "early"]
    for t in lines:
        assert t["y"] == [r["test_acc"] for r in Run(dash_runs / t["name"]).metric_records() if r["step"] > 0]
    at.selectbox(key="compare_metric").set_value("test_loss").run()
    assert chart(at, "test_loss by run")["layout"]["yaxis"]["type"] == "log"
    assert list(at.dataframe[0].value["run"]) == ["early", "grokked", "sub_run"]

    assert at.selectbox(key="sweep").value == "sweep_wd"
    assert "3 points (2 completed, 1 failed), 1 grokked" in " ".join(m.value for m in at.markdown)
    sweep = chart(at, "Grokking step vs optim.weight_decay")["data"]
    grokked, never = sweep
    assert grokked["x"] == [1.0] and grokked["y"] == [float(grokking_step(dash_runs))]
    assert never["x"] == [2.0] and never["name"].startswith("never grokked")
    assert len(at.get("image")) == 1  # the sweeps package's phase diagram (matplotlib)
    assert "grokking_step_vs_optim_weight_decay" in [c.value for c in at.caption]
    at.button[0].click().run()  # overlay the sweep's runs
    assert at.multiselect(key="compare_runs").value == [LABELS[6], LABELS[7]]
    no_exception(at)


def _seed_member(src: Path, dst: Path, seed: int, test_acc: list[float], lr: float | None = None) -> None:
    """A run directory with ``src``'s config (seed and split seed ``seed``) and evaluations at steps
    0, 100, 200, ... with the given test accuracy."""
    import yaml

    dst.mkdir(parents=True)
    cfg = yaml.safe_load((src / "config.yaml").read_text())
    cfg["seed"], cfg["task"]["split_seed"] = seed, seed
    if lr is not None:
        cfg["optim"]["lr"] = lr
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = Run(dst)
    run.write_status("completed", 100 * (len(test_acc) - 1))
    for i, acc in enumerate(test_acc):
        run.append_metrics({"step": 100 * i, "train_acc": 1.0, "test_acc": acc, "train_loss": 0.1, "test_loss": 1.0})


def test_compare_shows_a_seed_group_as_its_median_and_iqr(analysed_run, tmp_path):
    root = tmp_path / "runs"
    _seed_member(analysed_run, root / "ens" / "seed_0", 0, [0.0, 0.1, 0.5, 1.0])
    _seed_member(analysed_run, root / "ens" / "seed_1", 1, [0.0, 0.3, 0.7, 0.9])
    _seed_member(analysed_run, root / "ens" / "seed_2", 2, [0.0, 0.2, 0.9])  # stopped at step 200
    _seed_member(analysed_run, root / "other_lr", 3, [0.0, 0.0, 0.0, 0.0], lr=0.5)  # not a seed of the group
    at = app(root, "Compare")
    no_exception(at)
    group = "ens (seeds 0, 1, 2)"
    assert at.multiselect(key="compare_groups").options == [group]
    assert "ens/seed_1" in at.multiselect(key="compare_runs").options  # single runs can still be chosen
    at.multiselect(key="compare_groups").set_value([group]).run()
    no_exception(at)
    traces = {t["name"]: t for t in chart(at, "test_acc by run")["data"]}
    assert sorted(traces) == [f"{group} median", f"{group} q1", f"{group} q3"]
    median = traces[f"{group} median"]
    assert median["x"] == [100, 200, 300]  # step 0 is off the log axis
    # step 300: the median of the two seeds still running; quartiles are order statistics
    assert median["y"] == pytest.approx([0.2, 0.7, 0.95])
    assert traces[f"{group} q1"]["y"] == pytest.approx([0.1, 0.5, 0.9])
    assert traces[f"{group} q3"]["y"] == pytest.approx([0.3, 0.9, 1.0])
    assert "interquartile range" in " ".join(c.value for c in at.caption)
    at.toggle(key="compare_group_members").set_value(True).run()
    names = [t["name"] for t in chart(at, "test_acc by run")["data"]]
    assert [n for n in names if " seed " in n] == [f"{group} seed {s}" for s in (0, 1, 2)]
    at.multiselect(key="compare_runs").set_value(["other_lr"]).run()
    assert "other_lr" in [t["name"] for t in chart(at, "test_acc by run")["data"]]
    no_exception(at)


# -- performance --------------------------------------------------------------------------------------
def test_run_page_first_render_time(dash_runs, test_output_dir):
    """A run page renders from cold caches and its checkpoint tab opens; the script times are
    recorded in test-output/ for the benchmark note (timings are not asserted in tests)."""
    import streamlit as st

    st.cache_data.clear()
    t0 = time.perf_counter()
    at = app(dash_runs, "Run", "grokked")
    first = time.perf_counter() - t0
    no_exception(at)
    chart(at, "Training curves")
    t0 = time.perf_counter()
    open_tab(at, "At a checkpoint")
    checkpoint = time.perf_counter() - t0
    chart(at, "Embedding spectrum at step 1500")
    record = {"apptest_first_render_s": first, "apptest_checkpoint_tab_s": checkpoint}
    (test_output_dir / "dashboard_run_page_render.json").write_text(json.dumps(record))
