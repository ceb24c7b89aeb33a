"""Each registered figure on a real grokked run: drawn, titled, labelled, and showing exactly the
analysis records (or model arrays) it claims to show. Saving to files is tested through the CLI
in tests/test_report.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from groklab.plots import FIGURES, GROUPS, SkipFigure, specs
from groklab.plots.neurons import cluster_order

pytestmark = pytest.mark.filterwarnings("ignore:Animation was deleted")  # animations drawn, not saved

PNG = [s.name for s in specs() if s.kind == "png"]
GIF = [s.name for s in specs() if s.kind == "gif"]


def draw(name, data):
    fig = FIGURES[name].draw(data)
    assert isinstance(fig, Figure)
    return fig


def main_axes(fig):
    return [ax for ax in fig.axes if ax.axison and not hasattr(ax, "_colorbar")]


def lines(fig, gid=None, label=None):
    return [
        ln
        for ax in fig.axes
        for ln in ax.lines
        if (gid is None or ln.get_gid() == gid) and (label is None or ln.get_label() == label)
    ]


def bar_heights(ax):
    return [p.get_height() for p in ax.patches if type(p).__name__ == "Rectangle"]


def positive_steps(metrics, key):
    """(step, value) of a metrics.jsonl column where a log step axis shows it."""
    return [(r["step"], r[key]) for r in metrics if r["step"] > 0 and r.get(key) is not None]


def measure(progress, field):
    """The values of a progress measure where a log step axis shows them."""
    return [getattr(r, field) for r in progress if r.step > 0 and getattr(r, field) is not None]


# ------------------------------------------------------------------ the registry


def test_registry_covers_the_issue():
    assert len(PNG) >= 25 and len(GIF) >= 2
    assert {s.group for s in specs()} == set(GROUPS)
    for s in specs():
        assert s.title and s.caption and "\n" not in s.caption and len(s.caption) < 220, s.name
        assert s.name.replace("_", "").isalnum() and s.filename == f"{s.name}.{s.kind}"
    from groklab.plots import caption

    assert caption("fourier_embedding_spectrum") == FIGURES["fourier_embedding_spectrum"].caption


@pytest.mark.parametrize("name", PNG)
def test_png_figure_is_titled_and_labelled(name, data):
    """Drawn without error; a title; every data axes with x and y labels and something on it;
    every colour bar labelled."""
    fig = draw(name, data)
    assert fig.get_suptitle().strip()
    axes = main_axes(fig)
    assert axes
    for ax in axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (name, ax.get_title())
        assert ax.lines or ax.patches or ax.images or ax.collections, (name, ax.get_title())
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):
            assert (ax.get_ylabel() or ax.get_xlabel()).strip(), name


# ------------------------------------------------------------------ plotted data equal the records


def test_accuracy_and_loss_curves_are_metrics(data):
    fig = draw("dynamics_accuracy", data)
    for key, label in (("train_acc", "train"), ("test_acc", "test")):
        (ln,) = lines(fig, label=label)
        want = positive_steps(data.metrics, key)
        assert ln.get_xdata().tolist() == [s for s, _ in want]
        assert ln.get_ydata().tolist() == [v for _, v in want]
    ev = data.events
    marked = {ln.get_xdata()[0] for ln in lines(fig) if str(ln.get_label()).startswith(("memorization", "grokking"))}
    assert marked == {ev.memorization_step, ev.grokking_step}
    fig = draw("dynamics_loss", data)
    (ln,) = lines(fig, label="test")
    assert ln.get_ydata().tolist() == [v for _, v in positive_steps(data.metrics, "test_loss")]


def test_progress_panel_is_progress_jsonl(data):
    fig = draw("dynamics_progress", data)
    for key in ("restricted_loss", "excluded_loss", "gini_embed", "weight_norm", "trig_fve_logits", "cos_fraction"):
        (ln,) = lines(fig, gid=key)
        assert ln.get_ydata().tolist() == measure(data.progress, key), key


def test_per_sample_losses_average_to_the_recorded_test_loss(data):
    steps, losses = data.test_losses
    assert steps == [r.step for r in data.progress]
    recorded = [r.test_loss for r in data.progress]
    np.testing.assert_allclose(losses.mean(1), recorded, rtol=1e-6)
    img = draw("dynamics_sample_loss", data).axes[0].images[0].get_array()
    assert img.shape == (losses.shape[1], len(steps))  # rows: samples, columns: checkpoints
    np.testing.assert_allclose(np.sort(img, 0), np.sort(np.clip(losses.T, 1e-8, None), 0))


def test_spectrum_bars_are_fourier_json(data):
    ax = draw("fourier_embedding_spectrum", data).axes[0]
    assert bar_heights(ax) == data.fourier.embedding_norms
    (null,) = [ln for ln in ax.lines if ln.get_gid() == "null"]  # the line a frequency must clear to stand out
    assert null.get_ydata()[0] == data.neurons.embedding_null
    ax = draw("fourier_unembed_spectrum", data).axes[0]
    assert bar_heights(ax) == data.fourier.unembed_norms


FREQUENCY_FIGURES = [  # every figure over frequencies or circles of the task's basis
    "fourier_embedding_spectrum", "fourier_unembed_spectrum", "fourier_logit_norms",
    "fourier_spectrum_over_checkpoints", "fourier_unembed_over_checkpoints", "fourier_cos_coefficients",
    "embedding_circles", "neuron_activation_grids", "neuron_fve_heatmap", "neuron_cluster_sizes",
    "neuron_logit_maps", "logits_full_vs_restricted", "ablation_frequencies",
]  # fmt: skip


def texts(fig) -> str:
    """The figure's title, axes titles and axis labels, in one string."""
    parts = [fig.get_suptitle()]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return " | ".join(parts)


@pytest.mark.parametrize("name", FREQUENCY_FIGURES)
def test_frequency_figures_name_the_basis(name, data):
    assert data.basis_name == f"Z_{data.p} (identity)"  # add: Z_p itself
    assert data.basis_name in texts(draw(name, data))


def test_spectra_over_checkpoints_and_cos_coefficients(data):
    over = data.fourier.over_checkpoints
    img = draw("fourier_spectrum_over_checkpoints", data).axes[0].images[0].get_array()
    np.testing.assert_array_equal(img, [r.embedding_norms for r in over])
    img = draw("fourier_unembed_over_checkpoints", data).axes[0].images[0].get_array()
    np.testing.assert_array_equal(img, [r.unembed_norms for r in over])
    fig = draw("fourier_cos_coefficients", data)
    for k in data.keys:
        (ln,) = lines(fig, gid=f"k={k}")
        assert ln.get_ydata().tolist() == [r.cos_coefficients[k - 1] for r in over if r.step > 0]
    # the final coefficients of the key frequencies are the largest: what the caption says to look for
    final = np.asarray(over[-1].cos_coefficients)
    assert set(np.argsort(-np.abs(final))[: len(data.keys)] + 1) == set(data.keys)


def test_logit_fourier_norms_image(data):
    img = np.asarray(draw("fourier_logit_norms", data).axes[0].images[0].get_array())
    norms = np.asarray(data.fourier.logit_norms)
    big = norms >= img.min()
    np.testing.assert_allclose(img[big], norms[big])


def test_neuron_figures_are_neurons_json(data):
    n = data.neurons
    ax = draw("neuron_cluster_sizes", data).axes[0]
    assert bar_heights(ax) == [c.size for c in n.clusters]
    img = draw("neuron_fve_heatmap", data).axes[0].images[0].get_array()
    order, _ = cluster_order(n)
    assert sorted(order) == list(range(n.d_mlp))
    np.testing.assert_array_equal(img, np.asarray(n.fve)[order])
    # each clustered row's brightest cell is its cluster's frequency
    for c in n.clusters:
        for i in c.neurons:
            assert int(np.argmax(n.fve[i])) + 1 == c.k
    ax = draw("neuron_scores", data).axes[0]
    assert sum(bar_heights(ax)) == n.d_mlp


def test_activation_grids_are_the_neurons_activations(data):
    from groklab.analysis.neurons import eq_activations

    fig = draw("neuron_activation_grids", data)
    _, post, _ = eq_activations(data.checkpoint_model, data.dataset.tokens)
    p = data.p
    assert data.basis.table(post[data.basis.rows]).shape == (p, p, post.shape[1])  # add: the (a, b) table
    scores = data.neurons.neuron_score
    for ax in main_axes(fig):
        title = ax.get_title()  # "neuron N: k = K, FVE S"
        neuron = int(title.split(":")[0].split()[1])
        k = int(title.split("k = ")[1].split(",")[0])
        assert neuron in next(c.neurons for c in data.neurons.clusters if c.k == k)
        assert f"{scores[neuron]:.2f}" in title
        np.testing.assert_allclose(ax.images[0].get_array(), post[:, neuron].reshape(p, p).numpy())


def test_ablation_figures_are_ablation_json(data):
    a = data.ablation
    fig = draw("ablation_cumulative", data)
    cum = a.neurons.cumulative
    acc_line, loss_line = lines(fig, gid="importance")
    assert acc_line.get_xdata().tolist() == cum.n_ablated and acc_line.get_ydata().tolist() == cum.test_acc
    assert loss_line.get_xdata().tolist() == cum.loss_n_ablated
    assert loss_line.get_ydata().tolist() == cum.test_loss
    rand_acc, rand_loss = lines(fig, gid="random mean")
    assert rand_acc.get_ydata().tolist() == cum.random.test_acc_mean
    assert rand_loss.get_ydata().tolist() == cum.random.test_loss_mean
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]  # the min-max band of random orders
    assert band.min() == pytest.approx(min(cum.random.test_acc_min))
    assert band.max() == pytest.approx(max(cum.random.test_acc_max))

    ax_acc, ax_loss = main_axes(draw("ablation_frequencies", data))
    freq = a.frequency
    draws = freq.control.draws
    want = [freq.baseline.test_acc, freq.key.test_acc, np.mean([d.test_acc for d in draws])]
    np.testing.assert_allclose(bar_heights(ax_acc), want)
    want = [freq.baseline.test_loss, freq.key.test_loss, np.mean([d.test_loss for d in draws])]
    np.testing.assert_allclose(bar_heights(ax_loss), want)
    assert freq.baseline.test_acc == a.baseline.test_acc  # add: every test pair is in the basis
    assert freq.baseline.test_loss == pytest.approx(a.baseline.test_loss, rel=1e-6)
    assert freq.pairs in ax_acc.get_xlabel().replace("\n", " ")

    ax = draw("ablation_clusters", data).axes[0]
    heights = bar_heights(ax)  # cluster bars (then all clusters), then the random groups
    clusters = a.neurons.clusters
    n = len(clusters)
    ablated = [c.ablated.test_acc for c in clusters] + [a.neurons.all_clusters.test_acc]
    assert heights[: n + 1] == ablated
    assert heights[n + 1 :] == [c.random.test_acc.mean for c in clusters]

    ax = draw("ablation_heads", data).axes[0]
    assert bar_heights(ax) == [h.test_acc for h in a.heads]
    ax = draw("ablation_neuron_importance", data).axes[0]
    assert bar_heights(ax) == [t.delta_loss for t in a.neurons.top]


def test_parameter_norms_add_up_to_the_recorded_weight_norm(data):
    fig = draw("weights_norms", data)
    by_name = {ln.get_gid(): ln.get_ydata() for ln in lines(fig) if ln.get_gid()}
    assert "embed.W_E" in by_name and "unembed.W_U" in by_name
    total = sum(np.asarray(v, dtype=float) ** 2 for v in by_name.values())
    recorded = [r.weight_norm_sq for r in data.progress if r.step > 0]
    np.testing.assert_allclose(total, recorded, rtol=1e-5)


def test_weight_heatmaps_show_the_weights(data):
    model = data.checkpoint_model
    fig = draw("weights_embed_unembed", data)
    by_title = {ax.get_title().split()[0]: ax.images[0].get_array() for ax in main_axes(fig)}
    np.testing.assert_allclose(by_title["W_E"], model.embed.W_E.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(by_title["W_U"], model.unembed.W_U.detach().numpy(), rtol=1e-6)
    fig = draw("weights_attention", data)
    W_Q = model.blocks[0].attn.W_Q.detach()  # [head, d_model, d_head]
    img = next(ax.images[0].get_array() for ax in main_axes(fig) if ax.get_title().startswith("W_Q"))
    np.testing.assert_allclose(img[:, : W_Q.shape[2]], W_Q[0].numpy(), rtol=1e-6)  # head 0 first


def test_attention_figures_match_the_hooked_forward(data):
    model = data.checkpoint_model
    with torch.no_grad():
        _, cache = model.run_with_cache(data.dataset.tokens, names_filter=["blocks.0.attn.hook_pattern"])
    pattern = cache["blocks.0.attn.hook_pattern"]  # [n, head, q, k]
    fig = draw("attention_mean_pattern", data)
    for h, ax in enumerate(main_axes(fig)):
        np.testing.assert_allclose(ax.images[0].get_array(), pattern[:, h].mean(0).numpy(), atol=1e-6)
        np.testing.assert_allclose(ax.images[0].get_array()[2].sum(), 1.0, atol=1e-5)
    fig = draw("attention_eq_pattern", data)
    for h, ax in enumerate(main_axes(fig)):
        np.testing.assert_allclose(ax.images[0].get_array(), pattern[:, h, 2, 0].reshape(data.p, data.p).numpy())


def test_logit_tables_split_into_restricted_and_excluded(data):
    """Centred per input: full + (column means, centred) == restricted + excluded; the full table
    is the logits of the pairs (0, b), b in phi_b order (for add: b = 0..p-1), answers in phi_c order."""
    from groklab.plots.logits import logit_table_rows

    fig = draw("logits_full_vs_restricted", data)
    full, restricted, excluded = (np.asarray(ax.images[0].get_array()) for ax in main_axes(fig))
    basis = data.basis
    L = data.activations[2].double()[basis.rows][:, basis.class_order]
    rows = logit_table_rows(data)
    assert data.dataset.tokens[basis.rows[rows]].tolist() == [[0, b, data.p] for b in range(data.p)]
    np.testing.assert_allclose(full, (L[rows] - L[rows].mean(1, keepdim=True)).numpy())
    m = L.mean(0).numpy()
    np.testing.assert_allclose(full + (m - m.mean()), restricted + excluded, atol=1e-8)
    assert np.abs(excluded).max() < np.abs(full).max()  # a grokked model: the key frequencies carry most


def test_correct_class_surface_is_the_label_logit(data):
    fig = draw("logits_correct_class", data)
    correct, margin = (np.asarray(ax.images[0].get_array()) for ax in main_axes(fig))
    logits, labels = data.activations[2].double(), data.dataset.labels
    np.testing.assert_allclose(correct.ravel(), logits[torch.arange(len(labels)), labels].numpy())
    final = data.progress[-1]
    n_train = len(data.dataset.labels) - len(data.test_rows)
    acc_all = (final.train_acc * n_train + final.test_acc * len(data.test_rows)) / len(labels)
    assert math.isclose(float((margin > 0).mean()), acc_all, rel_tol=1e-9)


def test_embedding_circles_and_pca(data):
    from groklab.analysis.views import embedding_pca, frequency_plane

    fig = draw("embedding_circles", data)
    W = data.checkpoint_model.W_E_tokens
    for ax, k in zip(main_axes(fig), data.keys, strict=True):
        assert ax.get_title() == f"k = {k}"
        (sc,) = [c for c in ax.collections if c.get_gid() == "tokens"]
        xy = frequency_plane(W, k, data.basis).numpy()
        np.testing.assert_allclose(sc.get_offsets(), xy)
        r = np.hypot(xy[:, 0], xy[:, 1])
        assert r.std() < 0.35 * r.mean()  # grokked: the tokens lie near a circle
    fig = draw("embedding_pca", data)
    coords, _ = embedding_pca(W, 4)
    (sc,) = main_axes(fig)[0].collections
    np.testing.assert_allclose(sc.get_offsets(), coords[:, :2].numpy())


def test_embedding_geometry_panels_are_checkpoints(data):
    fig = draw("embedding_geometry", data)
    steps = [int(ax.get_title().split()[1]) for ax in main_axes(fig)]
    all_steps = [s for s, _ in data.states]
    assert steps[0] == all_steps[0] and steps[-1] == all_steps[-1] and set(steps) <= set(all_steps)
    for ax in main_axes(fig):
        img = ax.images[0].get_array()
        np.testing.assert_allclose(np.diag(img), 1.0, atol=1e-9)


# ------------------------------------------------------------------ animations


def step_label(fig):
    (text,) = fig.findobj(lambda a: a.get_gid() == "step")
    return int(text.get_text().rsplit(" ", 1)[1])


def test_spectrum_animation_frames_are_the_recorded_spectra(data):
    anim = FIGURES["anim_spectrum_curves"].draw(data)
    over = {r.step: r.embedding_norms for r in data.fourier.over_checkpoints}
    fig = anim._fig
    ax = fig.axes[0]
    n = len(list(anim.new_frame_seq()))
    assert n == min(len(over), 40)
    for i in (0, n - 1):
        anim._func(i)
        assert bar_heights(ax) == over[step_label(fig)]
    assert step_label(fig) == max(over)


def test_circles_animation_ends_on_the_final_circles(data):
    from groklab.analysis.views import frequency_plane

    anim = FIGURES["anim_embedding_circles"].draw(data)
    n = len(list(anim.new_frame_seq()))
    anim._func(n - 1)
    assert step_label(anim._fig) == data.states[-1][0]
    ax = anim._fig.axes[0]
    np.testing.assert_allclose(
        ax.collections[0].get_offsets(),
        frequency_plane(data.checkpoint_model.W_E_tokens, data.keys[0], data.basis),
    )


def test_blitted_gif_frames_equal_full_redraws(data, tmp_path):
    """The GIF writer draws only the animated artists over a fixed background: each frame must
    look like the whole figure drawn for that checkpoint."""
    from PIL import Image, ImageChops

    from groklab.plots import save

    anim = FIGURES["anim_spectrum_curves"].draw(data)
    save(anim, tmp_path / "a.gif", "gif")
    gif = Image.open(tmp_path / "a.gif")
    n = len(list(anim.new_frame_seq()))
    assert gif.n_frames == n
    for i in (1, n - 1):
        anim._func(i)
        anim._fig.savefig(tmp_path / "full.png", dpi=anim._fig.dpi)
        gif.seek(i)
        full = Image.open(tmp_path / "full.png").convert("RGB")
        frame = gif.convert("RGB")
        assert frame.size == full.size
        diff = np.asarray(ImageChops.difference(frame, full), dtype=float).max(-1)
        # GIF palette quantisation changes colours a little; a stale artist left from an earlier
        # frame (a second cursor or label) changes 0.2% of the pixels or more
        assert (diff > 40).mean() < 1e-3 and diff.mean() < 1.0, (i, (diff > 40).mean(), diff.mean())


# ------------------------------------------------------------------ honest skips


def test_mlp_on_mul_skips_with_reasons_and_draws_the_rest(mlp_data):
    reasons = {}
    for s in specs():
        try:
            s.draw(mlp_data)
        except SkipFigure as e:
            reasons[s.name] = str(e)
    for name in ("attention_mean_pattern", "attention_eq_pattern", "weights_attention", "ablation_heads"):
        assert "no attention" in reasons[name], name
    # 100 steps: no neuron cluster, so no key frequencies; each figure that needs them says so,
    # with the reason the records give (never a made-up list of frequencies)
    summary = mlp_data.summary
    assert summary.key_frequencies == [] and summary.key_frequencies_reason
    for name in ("embedding_circles", "anim_embedding_circles", "ablation_frequencies"):
        assert reasons[name] == summary.key_frequencies_reason, name
    null_reasons = mlp_data.progress[-1].null_reasons
    assert reasons["logits_full_vs_restricted"] == null_reasons["restricted_loss"]
    # what the discrete-log basis defines is drawn: spectra, logit norms, cos coefficients, neurons' FVE
    for name in ("dynamics_accuracy", "fourier_embedding_spectrum", "fourier_unembed_spectrum", "fourier_logit_norms",
                 "fourier_cos_coefficients", "neuron_fve_heatmap", "neuron_logit_maps", "weights_mlp"):  # fmt: skip
        assert name not in reasons, (name, reasons.get(name))
    # the progress panel draws the measures it has and names the null ones with their reason
    fig = FIGURES["dynamics_progress"].draw(mlp_data)
    assert not lines(fig, gid="restricted_loss") and lines(fig, gid="gini_embed")
    notes = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert f"restricted (all pairs): {null_reasons['restricted_loss']}" in notes


def test_mul_spectrum_is_in_the_discrete_log_basis(mlp_data):
    """mul mod 17: the spectrum lives on Z_16 under the discrete log to the primitive root 3; its
    x axis says so, and its 8 bars (k = 8, cos-only, included) are the record."""
    f = mlp_data.fourier
    assert (f.basis.kind, f.basis.n, f.basis.generator) == ("discrete_log", 16, 3)
    assert mlp_data.basis_name == "Z_16 (discrete log base 3)"
    fig = draw("fourier_embedding_spectrum", mlp_data)
    ax = main_axes(fig)[0]
    assert "frequency k of Z_16 (discrete log base 3)" in ax.get_xlabel()
    assert bar_heights(ax) == f.embedding_norms and len(f.embedding_norms) == 8
    assert [p.get_x() + p.get_width() / 2 for p in ax.patches] == list(range(1, 9))
    ax = main_axes(draw("fourier_unembed_spectrum", mlp_data))[0]
    assert "discrete log base 3" in ax.get_xlabel() and bar_heights(ax) == f.unembed_norms
    img = draw("fourier_spectrum_over_checkpoints", mlp_data).axes[0]
    assert "Z_16 (discrete log base 3)" in img.get_xlabel()
    np.testing.assert_array_equal(img.images[0].get_array(), [r.embedding_norms for r in f.over_checkpoints])
    fig = draw("fourier_cos_coefficients", mlp_data)
    assert "log a + log b - log c" in fig.get_suptitle()
    for k in f.frequencies:
        (ln,) = lines(fig, gid=f"k={k}")
        assert ln.get_ydata().tolist() == [r.cos_coefficients[k - 1] for r in f.over_checkpoints if r.step > 0]


def test_mul_neuron_figures_are_in_the_discrete_log_basis(mlp_data):
    """The FVE heatmap is the record over the 8 frequencies of Z_16; the W_L spectrum of each neuron
    is over the answers c != 0 placed at log c, and adds up to its row's norm there."""
    from groklab.plots.neurons import unembed_spectrum_per_neuron

    n = mlp_data.neurons
    fig = draw("neuron_fve_heatmap", mlp_data)
    assert "Z_16 (discrete log base 3)" in fig.axes[0].get_xlabel()
    order, _ = cluster_order(n)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), np.asarray(n.fve)[order])
    W_L = mlp_data.checkpoint_model.W_L.detach().double()
    spec = unembed_spectrum_per_neuron(W_L, mlp_data.basis)
    assert spec.shape == (n.d_mlp, 8)
    inside = W_L[:, 1:]  # answer 0 lies outside the group
    centred = inside - inside.mean(1, keepdim=True)
    np.testing.assert_allclose(spec.pow(2).sum(1).numpy(), centred.pow(2).sum(1).numpy(), rtol=1e-9)
    img = draw("neuron_logit_maps", mlp_data).axes[0].images[0].get_array()
    np.testing.assert_allclose(img, spec.numpy()[order])


def test_circles_are_drawn_at_the_discrete_log_of_each_token():
    """A hand-built embedding for mul mod 17 with token t at angle w_3 log_3(t) in a plane: the
    figure puts the 16 tokens of the group on that circle (token 0, outside the map, is not drawn)
    and joins them in the order a circle of frequency 3 visits them."""
    from groklab.analysis.basis import basis_of
    from groklab.analysis.views import frequency_plane
    from groklab.data import discrete_log, make_dataset
    from groklab.plots.embeddings import embedding_circles

    p, k = 17, 3
    basis = basis_of(make_dataset("mul", p))
    log = discrete_log(p)
    assert basis.n == 16 and log[3] == 1 and log[0] == -1
    angle = torch.tensor(2 * math.pi * k * np.where(log >= 0, log, 0) / 16, dtype=torch.float64)
    W = torch.zeros(p, 5, dtype=torch.float64)
    W[:, 0], W[:, 1] = 2 * torch.cos(angle), 2 * torch.sin(angle)
    W[0] = torch.tensor([7.0, -3.0, 1.0, 0.0, 0.0])  # token 0: anything (it has no place in Z_16)
    plane = frequency_plane(W, k, basis).numpy()
    assert np.isnan(plane[0]).all()
    fig = embedding_circles({k: plane}, log, 16, "mul", "log x")
    ax = main_axes(fig)[0]
    (sc,) = [c for c in ax.collections if c.get_gid() == "tokens"]
    xy = np.asarray(sc.get_offsets())
    assert len(xy) == 16
    np.testing.assert_allclose(np.hypot(xy[:, 0], xy[:, 1]), 2.0)
    np.testing.assert_allclose(np.arctan2(xy[:, 1], xy[:, 0]) % (2 * np.pi), angle[1:].numpy() % (2 * np.pi),
                               atol=1e-9)  # fmt: skip
    ring = ax.lines[0].get_xydata()[:-1]  # consecutive points of the ring are one step of w_3 apart
    steps = np.diff(np.unwrap(np.arctan2(ring[:, 1], ring[:, 0])))
    np.testing.assert_allclose(steps, 2 * np.pi / 16, atol=1e-9)
    assert "log x in Z_16" in " ".join(a.get_ylabel() for a in fig.axes)
    # the animation over checkpoints draws the same 16 tokens (frames: the plane shrunk, then as is)
    from groklab.plots.animations import circles_animation

    anim = circles_animation([0, 100], {k: np.stack([0.1 * plane, plane])}, log, 16, "mul")
    anim._func(1)
    np.testing.assert_allclose(anim._fig.axes[0].collections[0].get_offsets(), plane[1:])


def test_operation_without_a_structure_map_skips_every_fourier_figure_with_the_recorded_reason(structureless_data):
    """a^2 + ab + b^2 has no map phi: the records hold every spectrum as None with the reason, and
    each figure over frequencies says exactly that instead of drawing anything; nothing fails."""
    from groklab.plots import render_all

    d = structureless_data
    why = d.summary.basis.reason
    assert d.summary.basis.kind == "none" and why and "no map phi" in why
    assert d.fourier.embedding_norms is None and d.fourier.reasons["embedding_norms"] == why
    rendered = {r.spec.name: r for r in render_all(d)}
    assert not [(n, r.error) for n, r in rendered.items() if r.error]
    for name in [*FREQUENCY_FIGURES, "anim_spectrum_curves", "anim_embedding_circles"]:
        assert rendered[name].skip_reason == why, name
    assert "dynamics_accuracy" not in {n for n, r in rendered.items() if r.skip_reason}
