"""fastem against scikit-learn: one EM iteration and a whole fit, per covariance type.

Each benchmark group ("EM iteration full", "whole fit diag", ...) holds the two
implementations on the same data; compare within a group.  Nothing is
asserted about the times.

One EM iteration: the estimator is first fitted for one iteration from the
shared start, then refitted with ``warm_start=True, max_iter=1``, so each
timed call is one E-step and M-step from the current parameters with no
initialisation.  scikit-learn's ``fit`` adds one more E-step after its loop
(for the labels ``fit_predict`` returns), so its number here includes that;
``fastem bench`` measures iterations without it.

Whole fit: default settings (k-means initialisation, tol=1e-3), random_state=0.
"""
import pytest

import fastem
from fastem.bench.cases import REG_COVAR
from fastem.bench.runners import quiet_fit

IMPLEMENTATIONS = ["fastem", "sklearn"]


def _estimator(implementation, case, threads, **params):
    if implementation == "fastem":
        return fastem.GaussianMixture(
            case.n_components, covariance_type=case.covariance_type, n_threads=threads, **params
        )
    mixture = pytest.importorskip("sklearn.mixture")
    return mixture.GaussianMixture(case.n_components, covariance_type=case.covariance_type, **params)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_em_iteration(benchmark, problem, implementation, threads):
    case, X, start = problem
    model = _estimator(
        implementation, case, threads, max_iter=1, tol=0.0, reg_covar=REG_COVAR,
        **start.init_kwargs(),
    )
    quiet_fit(model, X)
    model.set_params(warm_start=True)
    benchmark.group = f"EM iteration {case.covariance_type}"
    benchmark.extra_info.update(case=case.name, threads=threads)
    benchmark(quiet_fit, model, X)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_whole_fit(benchmark, problem, implementation, threads):
    case, X, _ = problem
    model = _estimator(implementation, case, threads, random_state=0)
    benchmark.group = f"whole fit {case.covariance_type}"
    benchmark.extra_info.update(case=case.name, threads=threads)
    fitted = benchmark(quiet_fit, model, X)
    benchmark.extra_info["n_iter"] = int(fitted.n_iter_)
