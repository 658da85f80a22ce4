"""Regenerate the README's figures with fastem's own plotting code.

    python docs/figures/make_figures.py        # needs pip install ".[plot]"

fit_1d.png is exactly what ``fastem fit --plot fit_1d.png`` writes: the
built-in example, 0.6 N(2, 4^2) + 0.4 N(9, 2^2), fitted with two components.
fit_2d.png is a three-component full-covariance fit of three 2-D blobs of
different sizes and orientations.
"""
import os
import sys

import numpy as np

from fastem import GaussianMixture
from fastem.cli import main
from fastem.plotting import write_model_plot

HERE = os.path.dirname(os.path.abspath(__file__))


def three_blobs(n_samples=3000, random_state=0):
    """Three 2-D Gaussians: one tilted up, one tilted down, one flat."""
    rng = np.random.default_rng(random_state)
    weights = np.array([0.45, 0.30, 0.25])
    means = np.array([[0.0, 0.0], [6.0, 3.0], [1.0, 7.0]])
    covariances = np.array([
        [[2.0, 1.2], [1.2, 1.5]],
        [[1.0, -0.7], [-0.7, 1.2]],
        [[3.0, 0.0], [0.0, 0.4]],
    ])
    labels = rng.choice(len(weights), size=n_samples, p=weights)
    noise = rng.standard_normal((n_samples, 2))
    return means[labels] + np.einsum("nij,nj->ni", np.linalg.cholesky(covariances)[labels], noise)


def make_figures(directory=HERE):
    """Write fit_1d.png and fit_2d.png into `directory`; returns their paths."""
    path_1d = os.path.join(directory, "fit_1d.png")
    path_2d = os.path.join(directory, "fit_2d.png")
    if main(["fit", "--plot", path_1d]) != 0:
        raise SystemExit(f"fastem fit --plot {path_1d} failed")
    X = three_blobs()
    model = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    write_model_plot(model, X, path_2d)
    print(f"\nfigure saved to {path_2d}")
    return [path_1d, path_2d]


if __name__ == "__main__":
    make_figures(sys.argv[1] if len(sys.argv) > 1 else HERE)
