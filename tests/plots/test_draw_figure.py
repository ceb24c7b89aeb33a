"""draw_figure and Run.figure: one registered figure of a run, at the analysed checkpoint or at
another saved step, with known answers (what the analysis recorded for that step, the spectrum of
that step's weights)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.animation import Animation
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from groklab.analysis.fourier import embedding_spectrum
from groklab.plots import FIGURES, RunData, SkipFigure, draw_animation, draw_figure, specs
from groklab.records import to_json
from groklab.runs import RunError, load_run

pytestmark = pytest.mark.filterwarnings("ignore:Animation was deleted")

OVER_TRAINING = {  # figures of the run over training: drawn as recorded whatever the step
    "dynamics_accuracy",
    "dynamics_loss",
    "dynamics_progress",
    "dynamics_sample_loss",
    "fourier_spectrum_over_checkpoints",
    "fourier_unembed_over_checkpoints",
    "fourier_cos_coefficients",
    "embedding_geometry",
    "weights_norms",
    "anim_spectrum_curves",
    "anim_embedding_circles",
    "llc_over_training",
    "softmax_collapse",
    "clock_pizza",
    "agop",
}
AT_STEP = sorted(s.name for s in specs() if s.at_step)


@pytest.fixture(scope="module")
def run(analysed_run):
    return load_run(analysed_run)


@pytest.fixture(scope="module")
def early(data) -> int:
    """A saved step halfway between the start and the grokking step (its progress is recorded)."""
    steps = [r.step for r in data.progress if 0 < r.step < data.events.grokking_step]
    return steps[len(steps) // 2]


@pytest.fixture(scope="module")
def late(data) -> int:
    """A saved step between the grokking step and the analysed one (neuron clusters have formed)."""
    steps = [r.step for r in data.progress if data.events.grokking_step < r.step < data.step]
    return steps[len(steps) // 2]


@pytest.fixture(scope="module")
def early_data(run, early):
    return RunData(run, step=early)


@pytest.fixture(scope="module")
def late_data(run, late):
    return RunData(run, step=late)


def plotted(fig: Figure) -> list:
    """What a figure plots, axes by axes: line data, bar heights, images, scatter offsets; and its title."""
    out: list = [fig.get_suptitle()]
    for ax in fig.axes:
        out.append([ln.get_xydata() for ln in ax.lines])
        out.append([p.get_height() for p in ax.patches if type(p) is Rectangle])
        out.append([np.ma.getdata(im.get_array()) for im in ax.images])
        out.append([c.get_offsets() for c in ax.collections])
    return out


def same(a, b) -> bool:
    try:
        np.testing.assert_equal(a, b)
    except AssertionError:
        return False
    return True


def close(a, b, path: str = "record") -> None:
    """Two JSON values equal, numbers to a relative 1e-6 (float sums in another order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


# ------------------------------------------------------------------ which figures take a step


def test_figures_of_one_checkpoint_are_marked():
    assert {s.name for s in specs() if not s.at_step} == OVER_TRAINING
    assert not any(s.at_step for s in specs() if s.kind == "gif")


# ------------------------------------------------------------------ at the analysed step


@pytest.mark.parametrize("name", [s.name for s in specs() if s.kind == "png"])
def test_figure_at_the_analysed_step_is_the_figure_without_a_step(name, run, data):
    assert data.step == data.summary.analysed_step == run.steps[-1]
    fig = draw_figure(run, name, step=data.step)
    assert isinstance(fig, Figure)
    assert same(plotted(fig), plotted(FIGURES[name].draw(data)))


def test_records_recomputed_at_the_analysed_step_are_the_recorded_ones(run, data, monkeypatch):
    """The path that recomputes one checkpoint's records at another step, run at the analysed
    step, gives back what the analysis wrote (the same functions with the same inputs)."""
    monkeypatch.setattr(RunData, "at_analysed_step", property(lambda self: False))
    again = RunData(run, step=data.step)
    assert again.fourier is not data.fourier
    close(to_json(again.fourier), to_json(data.analysis.fourier), "fourier")
    close(to_json(again.neurons), to_json(data.analysis.neurons), "neurons")
    close(to_json(again.ablation), to_json(data.analysis.ablation), "ablation")


# ------------------------------------------------------------------ at an earlier step


def test_spectrum_at_an_earlier_step_is_that_steps_embedding(run, data, early):
    fig = run.figure("fourier_embedding_spectrum", step=early)
    bars = [p.get_height() for p in fig.axes[0].patches if type(p) is Rectangle]
    W_E = run.model(early).W_E_tokens.detach()
    np.testing.assert_allclose(bars, embedding_spectrum(W_E, data.basis).numpy(), rtol=1e-12)
    recorded = next(r for r in data.fourier.over_checkpoints if r.step == early)
    np.testing.assert_allclose(bars, recorded.embedding_norms, rtol=1e-6)  # what the analysis saw there
    assert not np.allclose(bars, data.fourier.embedding_norms, rtol=0.05)  # not the analysed step's
    assert f"at step {early} " in fig.get_suptitle()


def test_ablation_at_an_earlier_step_starts_from_that_steps_accuracy(early_data, data, early):
    """The intact bars of the frequency ablation at ``early`` are the test accuracy and loss the
    progress measures recorded at that step."""
    fig = FIGURES["ablation_frequencies"].draw(early_data)
    ax_acc, ax_loss = (ax for ax in fig.axes if ax.get_ylabel().startswith("test"))
    recorded = next(r for r in data.progress if r.step == early)
    assert ax_acc.patches[0].get_height() == pytest.approx(recorded.test_acc, abs=1e-9)
    assert ax_loss.patches[0].get_height() == pytest.approx(recorded.test_loss, rel=1e-5)
    assert early_data.ablation.key_frequencies == data.keys  # the run's key frequencies, held fixed


def test_neurons_at_a_later_step_are_that_steps_activations(late_data, run, late):
    """Each activation grid at ``late`` is that neuron's activation table of the model saved at
    ``late``; each clustered row of the FVE heatmap peaks at its cluster's frequency there."""
    from groklab.analysis.neurons import eq_activations

    _, post, _ = eq_activations(run.model(late), late_data.dataset.tokens)
    n = late_data.neurons
    assert n is not late_data.analysis.neurons and n.clusters
    fig = FIGURES["neuron_activation_grids"].draw(late_data)
    for ax in (ax for ax in fig.axes if ax.images and ax.get_title().startswith("neuron")):
        neuron = int(ax.get_title().split(":")[0].split()[1])
        np.testing.assert_allclose(ax.images[0].get_array(), post[:, neuron].reshape(late_data.p, -1).numpy())
    for c in n.clusters:
        assert all(int(np.argmax(n.fve[i])) + 1 == c.k for i in c.neurons)


@pytest.mark.parametrize("when", ["early", "late"])
@pytest.mark.parametrize("name", [n for n in AT_STEP if FIGURES[n].kind == "png"])
def test_every_figure_of_one_checkpoint_shows_the_step_asked_for(name, when, data, request):
    step, at_step = request.getfixturevalue(when), request.getfixturevalue(f"{when}_data")
    try:
        fig = FIGURES[name].draw(at_step)
    except SkipFigure as e:
        assert when == "early", e  # after grokking every figure has data
        pytest.skip(f"no data at step {step}: {e}")
    assert f"step {step}" in fig.get_suptitle()
    assert not same(plotted(fig)[1:], plotted(FIGURES[name].draw(data))[1:])


@pytest.mark.parametrize("name", sorted(OVER_TRAINING - {"anim_spectrum_curves", "anim_embedding_circles"}))
def test_figures_over_training_ignore_the_step(name, early_data, data):
    assert same(plotted(FIGURES[name].draw(early_data)), plotted(FIGURES[name].draw(data)))


# ------------------------------------------------------------------ refusals


def test_unknown_name_lists_the_known_ones(run):
    with pytest.raises(ValueError, match="unknown figure 'nope'") as e:
        draw_figure(run, "nope")
    assert all(name in str(e.value) for name in FIGURES)


def test_animations_are_refused_by_draw_figure_and_drawn_by_draw_animation(run, data):
    with pytest.raises(ValueError, match="draw_animation"):
        run.figure("anim_spectrum_curves")
    anim = draw_animation(run, "anim_spectrum_curves")
    assert isinstance(anim, Animation)
    assert len(list(anim.new_frame_seq())) == min(len(data.fourier.over_checkpoints), 40)
    with pytest.raises(ValueError, match="not an animation"):
        draw_animation(run, "dynamics_loss")


def test_a_step_without_weights_names_the_nearest_saved_steps(run):
    steps = run.steps
    i = next(i for i in range(1, len(steps)) if steps[i] - steps[i - 1] > 1)
    missing = steps[i - 1] + 1
    with pytest.raises(RunError, match=rf"no weights saved at step {missing}; nearest saved steps: "
                       rf"\[{steps[i - 1]}, {steps[i]}\]"):  # fmt: skip
        run.figure("fourier_embedding_spectrum", step=missing)
    with pytest.raises(RunError, match="nearest saved steps"):
        run.figure("dynamics_loss", step=missing)  # refused whatever the figure
