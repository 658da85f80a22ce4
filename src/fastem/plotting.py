"""Pictures of a fitted mixture, of a model selection and of a fit's convergence.

Every ``plot_*`` function draws on the matplotlib ``Axes`` it is given
(``ax=``), or on a new figure's when none is, and returns that Axes, so plots
compose: draw a density, then add your own curve to the same Axes.

matplotlib is an optional dependency (``pip install "fastem[plot]"``); it is
imported when a function draws, never when fastem is imported.  The
``write_*`` functions write a file through a bare ``matplotlib.figure.Figure``
(no pyplot): they work without a display and leave pyplot's figures and the
user's backend alone.

From the command line: ``fastem fit FILE --plot out.png`` (and, without FILE,
the built-in example's figure).  ``docs/figures/make_figures.py`` writes the
README's figures with these functions.
"""
import os

import numpy as np

from fastem._covariance import covariance_matrices
from fastem._validation import check_array

__all__ = [
    "plot_clusters",
    "plot_convergence",
    "plot_density",
    "plot_model",
    "plot_selection",
    "check_plot_path",
    "write_model_plot",
    "write_selection_plot",
]

INSTALL_HINT = 'pip install "fastem[plot]"'

# Points on the curves of plot_density: the trapezoid rule over them is within
# 1e-5 of the exact mass for any component wider than 1/200 of the plotted
# range, and 1000 points draw in a few milliseconds.
DENSITY_GRID_POINTS = 1000

# Share of the points plot_density may leave outside its x range (half in each tail).
HIDDEN_TAIL = 1e-3

# plot_density's y axis reaches this multiple of its highest bar or curve,
# leaving room for the legend above the data.
LEGEND_HEADROOM = 1.3

# Cells per side of plot_clusters' density shade: fine enough to show the shape
# of a cluster on a figure a few hundred pixels wide.
SHADE_BINS = 200

# The ellipses drawn around each mean, in standard deviations along the axes
# of the component's 2-D marginal covariance.
ELLIPSE_SIGMAS = (1, 2)

# Figure size (inches) and resolution of the files the write_* functions write.
FIGURE_SIZE = (7.0, 4.5)
FIGURE_DPI = 110


def _import_matplotlib():
    """matplotlib, or an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            f"fastem's plots need matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None
    return matplotlib


def _axes(ax):
    """The Axes to draw on: `ax`, or a new pyplot figure's (shown as pyplot shows figures)."""
    _import_matplotlib()
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure().add_subplot()


def _colours(n):
    """n distinct colours: tab10's for up to 10 components, evenly spaced hues beyond."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](k) for k in range(n)]
    return [colormaps["turbo"](t) for t in np.linspace(0.05, 0.95, n)]


def _fitted(model):
    model._check_is_fitted()
    return model


def _data(X):
    """X checked as predict checks it, as float64; a 1-D X is one feature."""
    if np.ndim(X) == 1:
        X = np.reshape(X, (-1, 1))
    return check_array(X, estimator_name=None, for_fit=False).astype(np.float64, copy=False)


def _feature_index(feature, n_features, name="feature"):
    if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
        raise TypeError(f"{name} must be an integer column index, got {feature!r}")
    if not -n_features <= feature < n_features:
        raise ValueError(f"{name}={feature} is out of range for X with {n_features} features")
    return int(feature) % n_features


def _check_features(model, X):
    if X.shape[1] != model.means_.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features, but the model was fitted with {model.means_.shape[1]}"
        )


def _marginal_covariances(model, features):
    """The covariance of the chosen features under each component: (K, len(features), len(features))."""
    k, d = model.means_.shape
    matrices = covariance_matrices(model.covariances_, model.covariance_type, k, d)
    return matrices[:, features][:, :, features]


def _short(value):
    """A parameter for a legend: two decimals at ordinary scales, 3 significant digits otherwise."""
    return f"{value:.2f}" if 0.01 <= abs(value) < 1e4 else f"{value:.3g}"


def _normal_pdf(x, mean, variance):
    return np.exp(-0.5 * (x - mean) ** 2 / variance) / np.sqrt(2.0 * np.pi * variance)


def _component_densities(model, grid, feature=0):
    """Each component's weighted marginal density along one feature.

    Parameters
    ----------
    model : fitted GaussianMixture
    grid : ndarray of shape (n_points,)
        Values of the feature.
    feature : int, default=0

    Returns
    -------
    ndarray of shape (n_components, n_points), float64
        Row k is w_k N(grid | mu_k, sigma_k^2), with sigma_k^2 the feature's
        variance under component k; the rows add up to the mixture's density.
    """
    d = model.means_.shape[1]
    feature = _feature_index(feature, d)
    variances = _marginal_covariances(model, [feature])[:, 0, 0]
    means = model.means_[:, feature]
    grid = np.asarray(grid, dtype=np.float64)
    return model.weights_[:, None] * _normal_pdf(grid[None, :], means[:, None], variances[:, None])


def plot_density(model, X, *, ax=None, bins="auto", feature=0):
    """Histogram of one feature with each component's density and the mixture's.

    The figure of fastem's motivating example: the data's histogram (as a
    density), each component's weighted density w_k N(x | mu_k, sigma_k^2)
    dashed, and the mixture's density, their sum, as a solid line.  For a
    model of several features, the curves are the marginals of `feature`.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        The data to histogram (usually the data the model was fitted to).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure's Axes when None.
    bins : int, sequence or str, default="auto"
        Bin edges or a rule, as ``numpy.histogram_bin_edges`` takes them; the
        histogram spans the plotted range, which leaves out the rarest 0.1 %
        of the points (its bars are normalised by all of them).
    feature : int, default=0
        Column of X to draw.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If X does not have the model's number of features, or `feature` is out of range.
    """
    model = _fitted(model)
    X = _data(X)
    _check_features(model, X)
    feature = _feature_index(feature, X.shape[1])
    ax = _axes(ax)
    x = X[:, feature]
    k = model.means_.shape[0]

    # The plotted range leaves out the rarest 0.1 % of the points (a far outlier
    # would squeeze the picture), then adds 5 % on each side so the tails show.
    low, high = np.quantile(x, [HIDDEN_TAIL / 2, 1 - HIDDEN_TAIL / 2])
    pad = 0.05 * (high - low) if high > low else 1.0
    grid = np.linspace(low - pad, high + pad, DENSITY_GRID_POINTS)
    # Heights are counts / (N * bin width) over all N points, as the curves are:
    # the bars' area is the share of the data inside the range.
    edges = np.histogram_bin_edges(x, bins=bins, range=(grid[0], grid[-1]))
    counts, _ = np.histogram(x, edges)
    ax.stairs(counts / (len(x) * np.diff(edges)), edges, fill=True, color="0.82",
              label=f"data (N={len(x):,})")
    densities = _component_densities(model, grid, feature)
    variances = _marginal_covariances(model, [feature])[:, 0, 0]
    # Components from left to right, so the legend reads like the picture.
    for j, colour in zip(np.argsort(model.means_[:, feature], kind="stable"), _colours(k)):
        ax.plot(grid, densities[j], linestyle="--", linewidth=1.6, color=colour,
                label=(f"component {j}: w={model.weights_[j]:.2f}, "
                       f"\u03bc={_short(model.means_[j, feature])}, "
                       f"\u03c3={_short(np.sqrt(variances[j]))}"),
                gid=f"component-{j}")
    ax.plot(grid, densities.sum(axis=0), color="black", linewidth=2.0, label="mixture",
            gid="mixture")
    ax.set_xlim(grid[0], grid[-1])
    # Headroom above the highest bar or curve, where the legend goes.
    top = max(np.max(counts / (len(x) * np.diff(edges))), np.max(densities.sum(axis=0)))
    ax.set_ylim(0, LEGEND_HEADROOM * top)
    ax.set_xlabel(f"feature {feature}" if X.shape[1] > 1 else "x")
    ax.set_ylabel("density")
    # A frame, so the legend stays readable where it has to overlap the bars.
    ax.legend(fontsize="small", framealpha=0.85, loc="upper left" if _left_lighter(x) else "upper right")
    return ax


def _left_lighter(x):
    """Whether fewer points lie left of the middle of their range than right of it."""
    middle = 0.5 * (x.min() + x.max())
    return np.count_nonzero(x < middle) < len(x) / 2


def _ellipse_axes(covariance, n_sigma):
    """Width, height and angle of the ellipse ``(x - mu)^T inv(C) (x - mu) = n_sigma^2``.

    Parameters
    ----------
    covariance : ndarray of shape (2, 2)
    n_sigma : float

    Returns
    -------
    width, height : float
        Full lengths along the major and the minor axis: 2 n_sigma sqrt(eigenvalue).
    angle : float
        Anticlockwise angle of the major axis from the x axis, in degrees
        (what ``matplotlib.patches.Ellipse`` takes).
    """
    values, vectors = np.linalg.eigh(np.asarray(covariance, dtype=np.float64))
    # eigh sorts eigenvalues ascending: the last is the major axis.
    major = vectors[:, 1]
    width, height = 2.0 * n_sigma * np.sqrt(np.maximum(values[::-1], 0.0))
    angle = np.degrees(np.arctan2(major[1], major[0]))
    return float(width), float(height), float(angle)


def _density_shade(ax, points, labels, colours):
    """A 2-D histogram of every point, each cell in the colour of its most frequent
    label, more opaque where there are more points (log scale)."""
    (x_low, y_low), (x_high, y_high) = points.min(axis=0), points.max(axis=0)
    x_edges = np.linspace(x_low, x_high if x_high > x_low else x_low + 1, SHADE_BINS + 1)
    y_edges = np.linspace(y_low, y_high if y_high > y_low else y_low + 1, SHADE_BINS + 1)
    col = np.clip(np.searchsorted(x_edges, points[:, 0], side="right") - 1, 0, SHADE_BINS - 1)
    row = np.clip(np.searchsorted(y_edges, points[:, 1], side="right") - 1, 0, SHADE_BINS - 1)
    cells = SHADE_BINS * SHADE_BINS
    counts = np.bincount(labels * cells + row * SHADE_BINS + col,
                         minlength=len(colours) * cells).reshape(len(colours), cells)
    total = counts.sum(axis=0)
    rgba = np.asarray(colours, dtype=np.float64)[counts.argmax(axis=0)]
    rgba[:, 3] = np.where(total > 0, 0.15 + 0.85 * np.log1p(total) / np.log1p(total.max()), 0.0)
    ax.imshow(rgba.reshape(SHADE_BINS, SHADE_BINS, 4), origin="lower", aspect="auto",
              extent=(x_edges[0], x_edges[-1], y_edges[0], y_edges[-1]),
              interpolation="nearest", gid="density-shade")


def plot_clusters(model, X, *, features=(0, 1), ax=None, max_points=20000):
    """Scatter of two features coloured by ``predict``, with each component's ellipses.

    Each component's mean is marked, and its 1 sigma and 2 sigma ellipses are
    drawn from the 2 x 2 marginal covariance of the two features (for every
    covariance type).  Above `max_points` samples, a density shade replaces
    the scatter: a 2-D histogram of all the points, each cell in the colour of
    the component most of its points are assigned to.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like of shape (n_samples, n_features)
        At least two features.
    features : pair of int, default=(0, 1)
        The columns on the x and y axes.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure's Axes when None.
    max_points : int, default=20000
        Largest sample drawn point by point.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If X has fewer than two features, not the model's number of features,
        or `features` is not two distinct columns of X.
    """
    from matplotlib.patches import Ellipse

    model = _fitted(model)
    X = _data(X)
    _check_features(model, X)
    if X.shape[1] < 2:
        raise ValueError("plot_clusters needs at least two features; use plot_density for one")
    if len(features) != 2:
        raise ValueError(f"features must be two column indices, got {features!r}")
    features = [_feature_index(f, X.shape[1], "features") for f in features]
    if features[0] == features[1]:
        raise ValueError(f"features must be two different columns, got {features}")
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    ax = _axes(ax)
    k = model.means_.shape[0]
    colours = _colours(k)
    labels = np.asarray(model.predict(X))
    points = X[:, features]

    if len(points) > max_points:
        _density_shade(ax, points, labels, colours)
    else:
        for j in range(k):
            mine = points[labels == j]
            ax.scatter(mine[:, 0], mine[:, 1], s=6 if len(points) > 2000 else 14,
                       color=colours[j], alpha=0.5, linewidths=0, rasterized=True)

    means = model.means_[:, features]
    marginals = _marginal_covariances(model, features)
    for j in range(k):
        for n_sigma in ELLIPSE_SIGMAS:
            width, height, angle = _ellipse_axes(marginals[j], n_sigma)
            ax.add_patch(Ellipse(means[j], width, height, angle=angle, fill=False,
                                 edgecolor=colours[j], linewidth=2.0 if n_sigma == 1 else 1.2,
                                 linestyle="-" if n_sigma == 1 else "--",
                                 gid=f"component-{j}-{n_sigma}sigma"))
        ax.plot(*means[j], marker="X", markersize=11, color=colours[j],
                markeredgecolor="black", linestyle="none",
                label=f"component {j} (w={model.weights_[j]:.2f})" if k <= 10 else None)
    ax.autoscale_view()
    ax.set_xlabel(f"feature {features[0]}")
    ax.set_ylabel(f"feature {features[1]}")
    if k <= 10:
        from matplotlib.lines import Line2D

        handles, names = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="0.3", linewidth=2.0),
                    Line2D([], [], color="0.3", linewidth=1.2, linestyle="--")]
        names += ["1\u03c3 ellipse", "2\u03c3 ellipse"]
        ax.legend(handles, names, fontsize="small", framealpha=0.8)
    return ax


def plot_model(model, X, *, ax=None):
    """:func:`plot_density` for a one-feature model, :func:`plot_clusters` otherwise.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like of shape (n_samples, n_features)
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    model = _fitted(model)
    if model.means_.shape[1] == 1:
        return plot_density(model, X, ax=ax)
    return plot_clusters(model, X, ax=ax)


_CRITERION_LABELS = {
    "bic": "BIC (lower is better)",
    "aic": "AIC (lower is better)",
    "held_out": "held-out log-likelihood per sample (higher is better)",
}


def plot_selection(result, *, ax=None):
    """Score against the number of components, one line per covariance type.

    Parameters
    ----------
    result : fastem.select's SelectionResult
        Read through its ``table`` (a dict of lists with "n_components",
        "covariance_type" and "score"), ``criterion`` and ``best_index_``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The winner is marked with a star and named in the legend.
    """
    from matplotlib.ticker import MaxNLocator

    ax = _axes(ax)
    table = result.table
    n_components = np.asarray(table["n_components"], dtype=np.int64)
    types = list(table["covariance_type"])
    # A candidate whose fit failed may have no score: it leaves a gap in its line.
    scores = np.array([np.nan if s is None else s for s in table["score"]], dtype=np.float64)
    names = list(dict.fromkeys(types))   # in the table's order
    for name, colour in zip(names, _colours(len(names))):
        rows = np.array([i for i, t in enumerate(types) if t == name])
        rows = rows[np.argsort(n_components[rows], kind="stable")]
        ax.plot(n_components[rows], scores[rows], marker="o", markersize=4, color=colour,
                label=name, gid=f"selection-{name}")
    best = result.best_index_
    ax.plot(n_components[best], scores[best], marker="*", markersize=18, color="gold",
            markeredgecolor="black", linestyle="none", zorder=3, gid="winner",
            label=f"best: K={n_components[best]}, {types[best]}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel(_CRITERION_LABELS.get(result.criterion, str(result.criterion)))
    ax.legend(fontsize="small", title="covariance type", title_fontsize="small")
    return ax


def plot_convergence(model, *, ax=None):
    """The lower bound after each EM iteration of the kept initialisation.

    Parameters
    ----------
    model : fitted GaussianMixture
        Its ``lower_bounds_`` are drawn.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the fit ran no EM iteration (``max_iter=0``).
    """
    model = _fitted(model)
    bounds = np.asarray(model.lower_bounds_, dtype=np.float64)
    if bounds.size == 0:
        raise ValueError("the model ran no EM iteration (max_iter=0): nothing to plot")
    ax = _axes(ax)
    from matplotlib.ticker import MaxNLocator

    iterations = np.arange(1, bounds.size + 1)
    ax.plot(iterations, bounds, marker="o" if bounds.size <= 50 else None, markersize=3,
            color="C0", gid="lower-bound")
    state = "converged" if model.converged_ else "not converged"
    ax.set_title(f"{state} after {model.n_iter_} iteration{'s' if model.n_iter_ != 1 else ''} "
                 f"(tol={model.tol:g})", fontsize="medium")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("lower bound (mean log-likelihood per sample)")
    return ax


# ---------------------------------------------------------------- to a file

def _save(path, draw, title=None):
    """Draw on a fresh Figure's Axes (no pyplot, so no GUI backend) and save it to `path`."""
    _import_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = figure.add_subplot()
    draw(ax)
    if title is not None:
        ax.set_title(title, fontsize="medium")
    figure.savefig(path, dpi=FIGURE_DPI)


def check_plot_path(path):
    """Raise ValueError naming the problem if a figure cannot be saved to `path`.

    Checks the format (from the extension), the directory, and that the path
    is not a directory, so a long fit does not end in a failed save.

    Parameters
    ----------
    path : str or os.PathLike
    """
    _import_matplotlib()
    from matplotlib.figure import Figure

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory")
    supported = Figure().canvas.get_supported_filetypes()
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension not in supported:
        raise ValueError(
            f"{path}: cannot tell the image format from the extension "
            f"(use one of {', '.join('.' + e for e in sorted(supported))})"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{path}: directory {parent} does not exist")


def write_model_plot(model, X, path, *, title=None):
    """Write :func:`plot_model`'s figure of `model` on `X` to `path`.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like of shape (n_samples, n_features)
    path : str or os.PathLike
        The format follows the extension (``.png``, ``.svg``, ``.pdf``...).
    title : str, optional
        Defaults to the model's size, covariance type and the sample size.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    OSError
        If the file cannot be written.
    """
    if title is None:
        k, d = model.means_.shape
        title = (f"GaussianMixture: {k} component{'s' if k != 1 else ''}, "
                 f"covariance_type={model.covariance_type!r}, N={np.shape(X)[0]:,}")
    _save(path, lambda ax: plot_model(model, X, ax=ax), title)


def write_selection_plot(result, path, *, title=None):
    """Write :func:`plot_selection`'s figure of `result` to `path`.

    Parameters
    ----------
    result : fastem.select's SelectionResult
    path : str or os.PathLike
    title : str, optional

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    OSError
        If the file cannot be written.
    """
    _save(path, lambda ax: plot_selection(result, ax=ax), title)
