"""fastem.plotting: the images are real, the curves are the model's, the ellipses its covariances.

Everything draws on bare ``matplotlib.figure.Figure`` objects (the Agg
renderer, no pyplot) unless a test is about pyplot; the few pyplot figures are
closed by the ``close_pyplot`` fixture.
"""
import contextlib
import io
import json
import subprocess
import sys
import types

import numpy as np
import pytest
from scipy import stats

from fastem import GaussianMixture
from fastem.cli import main
from fastem.exceptions import NotFittedError

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage, imread  # noqa: E402

from fastem import plotting  # noqa: E402

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def close_pyplot():
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def _axes(size=(4.0, 3.0)):
    return Figure(figsize=size).add_subplot()


def _one_feature(rng, n=3000):
    labels = rng.random(n) < 0.6
    return np.where(labels, rng.normal(2.0, 4.0, n), rng.normal(9.0, 2.0, n))[:, None]


def _three_features(rng, n=1500):
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 2.0, -3.0], [0.0, 6.0, 4.0]])
    mixing = np.array([[1.0, 0.6, 0.0], [0.0, 1.0, -0.4], [0.3, 0.0, 0.7]])
    return centres[rng.integers(3, size=n)] + rng.standard_normal((n, 3)) @ mixing


def _fit(X, k, covariance_type="full"):
    return GaussianMixture(k, covariance_type=covariance_type, random_state=0).fit(X)


def _variance(model, feature):
    """Each component's variance of one feature, read from the storage of each type by hand."""
    cov, k = model.covariances_, len(model.weights_)
    return {
        "full": lambda: cov[:, feature, feature],
        "tied": lambda: np.full(k, cov[feature, feature]),
        "diag": lambda: cov[:, feature],
        "spherical": lambda: cov,
    }[model.covariance_type]()


def _marginal(model, j, features):
    cov, d = model.covariances_, model.means_.shape[1]
    full = {
        "full": lambda: cov[j],
        "tied": lambda: cov,
        "diag": lambda: np.diag(cov[j]),
        "spherical": lambda: cov[j] * np.eye(d),
    }[model.covariance_type]()
    return full[np.ix_(features, features)]


def _lines(ax):
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def _png(path, width, height):
    """Check a PNG file: signature, pixel size, more than one colour."""
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_SIGNATURE
    image = imread(path)
    assert image.shape[:2] == (height, width)
    pixels = image.reshape(-1, image.shape[2])
    assert len(np.unique(pixels, axis=0)) > 1, "blank image"


def _selection_result():
    """A stand-in with the SelectionResult attributes plot_selection reads."""
    rows = [(k, t) for t in ("full", "diag") for k in (3, 1, 2)]   # K out of order on purpose
    scores = [120.0, 300.0, 150.0, 140.0, 310.0, None]             # a failed candidate: None
    return types.SimpleNamespace(
        table={"n_components": [k for k, _ in rows], "covariance_type": [t for _, t in rows],
               "score": scores, "converged": [True] * 6, "n_iter": [5] * 6, "seconds": [0.1] * 6},
        criterion="bic",
        best_index_=0,
    )


# ------------------------------------------------------------- images


@pytest.fixture
def fitted(rng):
    X1, X3 = _one_feature(rng), _three_features(rng)
    return X1, _fit(X1, 2), X3, _fit(X3, 3)


@pytest.mark.parametrize("kind", ["density", "clusters", "model", "selection", "convergence"])
def test_each_plot_renders_a_non_blank_png_of_the_figure_size(kind, fitted, tmp_path):
    X1, model1, X3, model3 = fitted
    ax = _axes((4.0, 3.0))
    draw = {
        "density": lambda: plotting.plot_density(model1, X1, ax=ax),
        "clusters": lambda: plotting.plot_clusters(model3, X3, ax=ax),
        "model": lambda: plotting.plot_model(model3, X3, ax=ax),
        "selection": lambda: plotting.plot_selection(_selection_result(), ax=ax),
        "convergence": lambda: plotting.plot_convergence(model3, ax=ax),
    }[kind]
    assert draw() is ax
    ax.figure.savefig(tmp_path / "p.png", dpi=50)
    _png(tmp_path / "p.png", 200, 150)


def test_write_functions_save_a_png_of_the_documented_size(fitted, tmp_path):
    X1, model1, _, _ = fitted
    width, height = (round(s * plotting.FIGURE_DPI) for s in plotting.FIGURE_SIZE)
    plotting.write_model_plot(model1, X1, tmp_path / "m.png")
    _png(tmp_path / "m.png", width, height)
    plotting.write_selection_plot(_selection_result(), str(tmp_path / "s.png"))
    _png(tmp_path / "s.png", width, height)


def test_without_ax_a_new_pyplot_figure_is_drawn_on(fitted, close_pyplot):
    X1, model1, _, _ = fitted
    first = plotting.plot_density(model1, X1)
    second = plotting.plot_convergence(model1)
    assert first is not second
    assert first.figure in [close_pyplot.figure(n) for n in close_pyplot.get_fignums()]


# ------------------------------------------------------------- 1-D density


def test_density_curves_are_the_mixture_and_integrate_to_its_mass(seed):
    X = _one_feature(np.random.default_rng(seed))
    model = _fit(X, 2)
    ax = plotting.plot_density(model, X, ax=_axes())
    lines = _lines(ax)
    x, mixture = lines["mixture"].get_data()
    components = [lines[f"component-{j}"].get_ydata() for j in range(2)]
    # The curve is the model's density (through the engine's score_samples)...
    np.testing.assert_allclose(mixture, np.exp(model.score_samples(x[:, None])), rtol=1e-9)
    np.testing.assert_allclose(np.sum(components, axis=0), mixture, rtol=1e-12)
    # ...and its area over the plotted range is the mixture's mass there.
    sigmas = np.sqrt(model.covariances_[:, 0, 0])
    mass = np.sum(model.weights_ * (stats.norm.cdf(x[-1], model.means_[:, 0], sigmas)
                                    - stats.norm.cdf(x[0], model.means_[:, 0], sigmas)))
    assert abs(np.trapezoid(mixture, x) - mass) < 1e-3
    for j in range(2):
        component_mass = model.weights_[j] * (stats.norm.cdf(x[-1], model.means_[j, 0], sigmas[j])
                                              - stats.norm.cdf(x[0], model.means_[j, 0], sigmas[j]))
        assert abs(np.trapezoid(components[j], x) - component_mass) < 1e-3
    # The histogram covers all but the rarest 0.1 % of the data, and its area is their share.
    (bars,) = [p for p in ax.patches if p.get_label().startswith("data")]
    heights, edges = bars.get_data()[:2]   # a StepPatch: values, edges, baseline
    inside = np.mean((X[:, 0] >= edges[0]) & (X[:, 0] <= edges[-1]))
    assert inside >= 1 - plotting.HIDDEN_TAIL - 1e-9
    assert np.sum(heights * np.diff(edges)) == pytest.approx(inside, abs=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_density_of_a_wider_model_draws_the_feature_marginal(covariance_type, seed):
    X = _three_features(np.random.default_rng(seed))
    model = _fit(X, 3, covariance_type)
    lines = _lines(plotting.plot_density(model, X, ax=_axes(), feature=1))
    x = lines["mixture"].get_xdata()
    sigmas = np.sqrt(_variance(model, 1))
    expected = model.weights_[:, None] * stats.norm.pdf(x, model.means_[:, 1, None], sigmas[:, None])
    for j in range(3):
        np.testing.assert_allclose(lines[f"component-{j}"].get_ydata(), expected[j], rtol=1e-9)
    np.testing.assert_allclose(lines["mixture"].get_ydata(), expected.sum(axis=0), rtol=1e-9)


# ------------------------------------------------------------- 2-D clusters


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_ellipses_are_the_marginal_covariance_contours(covariance_type, seed):
    X = _three_features(np.random.default_rng(seed))
    model = _fit(X, 3, covariance_type)
    features = [2, 0]
    ax = plotting.plot_clusters(model, X, features=features, ax=_axes())
    ellipses = {p.get_gid(): p for p in ax.patches}
    for j in range(3):
        cov = _marginal(model, j, features)
        values, vectors = np.linalg.eigh(cov)
        for n_sigma in (1, 2):
            ellipse = ellipses[f"component-{j}-{n_sigma}sigma"]
            np.testing.assert_allclose(ellipse.center, model.means_[j, features])
            np.testing.assert_allclose([ellipse.width, ellipse.height],
                                       2 * n_sigma * np.sqrt(values[::-1]), rtol=1e-9)
            if values[1] > values[0] * (1 + 1e-6):    # a circle has no orientation
                major = np.radians(ellipse.angle)
                assert abs(np.dot([np.cos(major), np.sin(major)], vectors[:, 1])) == pytest.approx(1.0)
            # Whatever the parametrisation, the drawn outline is the contour
            # (x - mu)^T inv(C) (x - mu) = n_sigma^2.
            outline = ellipse.get_patch_transform().transform(ellipse.get_path().vertices)
            offsets = outline - model.means_[j, features]
            distances = np.einsum("ni,ij,nj->n", offsets, np.linalg.inv(cov), offsets)
            # Bezier control points lie off the curve; the curve's own points
            # (every third vertex of matplotlib's unit circle) lie on it.
            on_curve = distances[::3][:-1]
            np.testing.assert_allclose(on_curve, n_sigma**2, rtol=1e-6)
        (mean_marker,) = [line for line in ax.get_lines() if line.get_label().startswith(f"component {j} ")]
        np.testing.assert_allclose(np.ravel(mean_marker.get_xydata()), model.means_[j, features])


def test_small_samples_are_scattered_in_the_colour_of_their_prediction(fitted):
    _, _, X3, model3 = fitted
    ax = plotting.plot_clusters(model3, X3, ax=_axes())
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    labels = model3.predict(X3)
    assert len(scatters) == 3
    for j, scatter in enumerate(scatters):
        np.testing.assert_array_equal(scatter.get_offsets(), X3[labels == j][:, :2])
    assert not [im for im in ax.get_images()]


def test_large_samples_are_shaded_by_density_in_the_colour_of_the_majority(fitted):
    _, _, X3, model3 = fitted
    ax = plotting.plot_clusters(model3, X3, ax=_axes(), max_points=len(X3) - 1)
    assert not [c for c in ax.collections if isinstance(c, PathCollection)]
    (image,) = ax.get_images()
    assert isinstance(image, AxesImage) and image.get_gid() == "density-shade"
    rgba = image.get_array()
    assert rgba.shape == (plotting.SHADE_BINS, plotting.SHADE_BINS, 4)
    # The cell holding a component's mean is painted in that component's colour.
    colours = plotting._colours(3)
    x_low, x_high, y_low, y_high = image.get_extent()
    for j, mean in enumerate(model3.means_[:, :2]):
        col = int((mean[0] - x_low) / (x_high - x_low) * plotting.SHADE_BINS)
        row = int((mean[1] - y_low) / (y_high - y_low) * plotting.SHADE_BINS)
        cell = rgba[row, col]
        if cell[3] > 0:
            np.testing.assert_allclose(cell[:3], colours[j][:3])


def test_plot_model_picks_density_for_one_feature_and_clusters_for_more(fitted):
    X1, model1, X3, model3 = fitted
    assert "mixture" in _lines(plotting.plot_model(model1, X1, ax=_axes()))
    assert any(p.get_gid() == "component-0-1sigma" for p in plotting.plot_model(model3, X3, ax=_axes()).patches)


# ------------------------------------------------------------- selection, convergence


def test_selection_draws_one_line_per_type_in_k_order_and_marks_the_winner():
    ax = plotting.plot_selection(_selection_result(), ax=_axes())
    lines = _lines(ax)
    np.testing.assert_array_equal(lines["selection-full"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["selection-full"].get_ydata(), [300.0, 150.0, 120.0])
    np.testing.assert_array_equal(lines["selection-diag"].get_ydata(), [310.0, np.nan, 140.0])
    np.testing.assert_array_equal(np.ravel(lines["winner"].get_xydata()), [3, 120.0])
    assert "BIC" in ax.get_ylabel()


def test_convergence_draws_the_lower_bounds(fitted):
    _, _, X3, model3 = fitted
    x, y = _lines(plotting.plot_convergence(model3, ax=_axes()))["lower-bound"].get_data()
    np.testing.assert_array_equal(x, np.arange(1, model3.n_iter_ + 1))
    np.testing.assert_array_equal(y, model3.lower_bounds_)


# ------------------------------------------------------------- errors


def test_errors_name_the_problem(fitted):
    X1, model1, X3, model3 = fitted
    with pytest.raises(NotFittedError):
        plotting.plot_density(GaussianMixture(2), X1, ax=_axes())
    with pytest.raises(ValueError, match="Input X contains NaN"):
        plotting.plot_density(model1, np.where(X1 > 0, X1, np.nan), ax=_axes())
    with pytest.raises(ValueError, match="X has 3 features, but the model was fitted with 1"):
        plotting.plot_density(model1, X3, ax=_axes())
    with pytest.raises(ValueError, match="feature=3 is out of range"):
        plotting.plot_density(model3, X3, feature=3, ax=_axes())
    with pytest.raises(ValueError, match="two different columns"):
        plotting.plot_clusters(model3, X3, features=(1, 1), ax=_axes())
    with pytest.raises(ValueError, match="needs at least two features"):
        plotting.plot_clusters(model1, X1, ax=_axes())
    with pytest.raises(ValueError, match="no EM iteration"):
        plotting.plot_convergence(GaussianMixture(2, max_iter=0).fit(X1), ax=_axes())


def test_missing_matplotlib_is_an_import_error_with_the_install_command(fitted, monkeypatch):
    X1, model1, _, _ = fitted
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib now fails
    with pytest.raises(ImportError, match=r'pip install "fastem\[plot\]"'):
        plotting.plot_density(model1, X1)
    with pytest.raises(ImportError, match=r'pip install "fastem\[plot\]"'):
        plotting.write_model_plot(model1, X1, "never.png")


def test_importing_fastem_does_not_import_matplotlib():
    code = ("import sys, fastem, fastem.plotting, fastem.cli; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------- command line


def _run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(arg) for arg in argv])
    return status, out.getvalue(), err.getvalue()


def test_fit_plot_writes_the_figure_of_a_file_and_of_the_built_in_example(fitted, tmp_path):
    _, _, X3, _ = fitted
    data = tmp_path / "x.csv"
    np.savetxt(data, X3, delimiter=",")
    status, out, err = _run_main(["fit", data, "-k", "3", "--plot", tmp_path / "file.png"])
    assert status == 0, err
    assert f"figure saved to {tmp_path / 'file.png'}" in out
    _png(tmp_path / "file.png", *(round(s * plotting.FIGURE_DPI) for s in plotting.FIGURE_SIZE))
    status, out, err = _run_main(["fit", "--n-samples", "5000", "--plot", tmp_path / "builtin.png"])
    assert status == 0, err
    _png(tmp_path / "builtin.png", *(round(s * plotting.FIGURE_DPI) for s in plotting.FIGURE_SIZE))


def test_fit_plot_with_json_keeps_stdout_one_json_document(tmp_path):
    status, out, err = _run_main(["fit", "--n-samples", "2000", "--json", "--plot", tmp_path / "j.png"])
    assert status == 0, err
    assert json.loads(out)["n_iter"] >= 1
    _png(tmp_path / "j.png", *(round(s * plotting.FIGURE_DPI) for s in plotting.FIGURE_SIZE))


@pytest.mark.parametrize("target, message", [
    ("out.xyz", "cannot tell the image format"),
    ("missing/out.png", "does not exist"),
    (".", "is a directory"),
])
def test_fit_plot_to_a_bad_path_exits_2_before_fitting(target, message, tmp_path):
    status, out, err = _run_main(["fit", "--n-samples", "100", "--plot", tmp_path / target])
    assert status == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_fit_plot_without_matplotlib_exits_2_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = _run_main(["fit", "--n-samples", "100", "--plot", tmp_path / "a.png"])
    assert status == 2 and out == ""
    assert 'pip install "fastem[plot]"' in err and len(err.strip().splitlines()) == 1


def test_plot_selection_draws_a_real_selection_and_marks_its_winner(fitted, tmp_path):
    import fastem

    _, _, X3, _ = fitted
    result = fastem.select(X3, n_components=[1, 2, 3], covariance_types=("full", "diag"),
                           random_state=0, max_iter=20)
    ax = plotting.plot_selection(result, ax=_axes((4.0, 3.0)))
    # one line per covariance type, each through its candidates' scores in K order
    lines = {line.get_label(): line for line in ax.get_lines()}
    best = result.best_index_
    winner = lines[f"best: K={result.table['n_components'][best]}, {result.table['covariance_type'][best]}"]
    np.testing.assert_allclose(winner.get_ydata(), [result.table["score"][best]])
    for covariance_type in ("full", "diag"):
        line = lines[covariance_type]
        rows = [i for i, t in enumerate(result.table["covariance_type"]) if t == covariance_type]
        rows.sort(key=lambda i: result.table["n_components"][i])
        np.testing.assert_array_equal(line.get_xdata(), [result.table["n_components"][i] for i in rows])
        np.testing.assert_allclose(line.get_ydata(), [result.table["score"][i] for i in rows])
    status, out, err = _run_main(["select", _saved(tmp_path, X3), "-k", "1-3",
                                  "--covariance-types", "full,diag", "--plot", tmp_path / "sel.png"])
    assert status == 0, err
    assert f"figure saved to {tmp_path / 'sel.png'}" in out
    _png(tmp_path / "sel.png", *(round(s * plotting.FIGURE_DPI) for s in plotting.FIGURE_SIZE))


def _saved(tmp_path, X):
    path = tmp_path / "x.npy"
    np.save(path, X)
    return path


def test_readme_plots_example_runs(tmp_path, monkeypatch, close_pyplot):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                if "from fastem.plotting import" in b]
    monkeypatch.chdir(tmp_path)
    matplotlib.use("Agg")
    exec(compile(block, "README.md", "exec"), {})
    _png(tmp_path / "plots.png", 1500, 400)
