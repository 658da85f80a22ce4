"""The C-level API, used the way another package would use it.

The README's Cython and C examples are extracted from README.md, compiled in a
temporary directory against the installed fastem (``fastem.get_include()``),
imported, and must reproduce ``fastem.GaussianMixture`` bit for bit.
"""
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastem
import fastem.kernels
from fastem import _em

README = Path(__file__).resolve().parents[1] / "README.md"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# 3 features: the column path; 12: one GEMM for all components; 20: per-component BLAS.
FEATURE_COUNTS = (3, 12, 20)
# A tight tolerance so that every fit runs several iterations.
TOL = 1e-4


def _compiler_available():
    cc = sysconfig.get_config_var("CC") or "cc"
    return shutil.which(shlex.split(cc)[0]) is not None


def _readme_block(language, first_line):
    """The README code block in `language` whose first line starts with `first_line`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)
    matching = [b for b in blocks if b.startswith(first_line)]
    assert len(matching) == 1, f"README.md must hold one {language} block starting {first_line!r}"
    return matching[0]


def _build(tmp_path, setup_source, module_name):
    (tmp_path / "setup.py").write_text(setup_source)
    done = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"building {module_name} failed:\n{done.stdout}\n{done.stderr}"
    sys.path.insert(0, str(tmp_path))
    try:
        __import__(module_name)
    finally:
        sys.path.remove(str(tmp_path))
    return sys.modules[module_name]


needs_compiler = pytest.mark.skipif(
    not _compiler_available(), reason="no C compiler: cannot build a consumer extension"
)


@pytest.fixture(scope="module")
def cython_consumer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cython_consumer")
    (tmp / "em_consumer.pyx").write_text(_readme_block("cython", "# em_consumer.pyx"))
    return _build(tmp, _readme_block("python", "# setup.py"), "em_consumer")


@pytest.fixture(scope="module")
def c_consumer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("c_consumer")
    (tmp / "em_consumer_c.c").write_text(_readme_block("c", "/* em_consumer_c.c"))
    setup = (
        "import fastem\nfrom setuptools import Extension, setup\n"
        'setup(ext_modules=[Extension("em_consumer_c", ["em_consumer_c.c"], '
        "include_dirs=[fastem.get_include()])])\n"
    )
    return _build(tmp, setup, "em_consumer_c")


def _overlapping_blobs(n_features, seed=0, n_per_blob=1500):
    # Overlapping enough that EM needs several iterations.
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0 / np.sqrt(n_features), size=(3, n_features))
    return np.concatenate([rng.normal(size=(n_per_blob, n_features)) + c for c in centres])


def _start_and_reference(X, covariance_type, **params):
    """Initial parameters (max_iter=0) and the full fit from them, through the Python API."""
    start = fastem.GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                   max_iter=0, tol=TOL, **params).fit(X)
    reference = fastem.GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                       max_iter=200, tol=TOL, **params).fit(X)
    assert reference.converged_ and reference.n_iter_ > 2
    return start, reference


def _assert_same_bits(fitted, reference):
    weights, means, covariances, factors = fitted
    np.testing.assert_array_equal(weights, reference.weights_)
    np.testing.assert_array_equal(means, reference.means_)
    np.testing.assert_array_equal(covariances.reshape(reference.covariances_.shape), reference.covariances_)
    np.testing.assert_array_equal(factors.reshape(reference.precisions_cholesky_.shape),
                                  reference.precisions_cholesky_)


# ---------------------------------------------------------------------------
# Shipping and versions (no compiler needed)
# ---------------------------------------------------------------------------

def test_get_include_holds_the_header_and_pxd_files():
    folder = Path(fastem.get_include())
    for name in ("fastem.h", "kernels.pxd", "kernels.pyi"):
        assert (folder / name).is_file(), name


def test_api_version_is_the_same_in_python_and_the_header():
    header = (Path(fastem.get_include()) / "fastem.h").read_text()
    version = int(re.search(r"#define FASTEM_API_VERSION (\d+)", header).group(1))
    assert fastem.kernels.API_VERSION == version == 1


def test_header_constants_match_the_em_layer():
    assert fastem.kernels.COVARIANCE_TYPES == {k: int(v) for k, v in _em.COVARIANCE_CODES.items()}
    assert fastem.kernels.STATUS_CODES == {
        "FASTEM_" + status.name.removeprefix("STATUS_"): status.value for status in _em.Status
    }


def test_capsule_is_published():
    assert "fastem.kernels._C_API" in repr(fastem.kernels._C_API)


# ---------------------------------------------------------------------------
# The Cython consumer
# ---------------------------------------------------------------------------

@needs_compiler
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_cython_consumer_fit_equals_python_fit(cython_consumer, covariance_type, n_features, n_threads):
    X = _overlapping_blobs(n_features)
    start, reference = _start_and_reference(X, covariance_type)
    with threadpool_limits(1, "blas"):
        *fitted, (n_iter, converged, bound) = cython_consumer.fit(
            X, covariance_type, start.weights_, start.means_, start.precisions_cholesky_,
            max_iter=200, tol=TOL, n_threads=n_threads)
    _assert_same_bits(fitted, reference)
    assert (n_iter, converged, bound) == (reference.n_iter_, reference.converged_, reference.lower_bound_)


@needs_compiler
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_cython_consumer_float32_matches_the_estimators_iterations(cython_consumer, covariance_type):
    # The estimator stores float32 attributes for float32 data, so compare with its
    # iterations (fastem._em, the code GaussianMixture.fit runs) from float64 parameters.
    X = _overlapping_blobs(12).astype(np.float32)
    start, _ = _start_and_reference(X.astype(np.float64), covariance_type)
    model = _em.ModelArrays(covariance_type, start.weights_, start.means_, start.precisions_cholesky_)
    total = _em.weights_total(None, len(X))
    with threadpool_limits(1, "blas"):
        bounds = [model.em_step(X, None, total, 1e-6, 2) for _ in range(5)]
        *fitted, (n_iter, _, bound) = cython_consumer.fit(
            X, covariance_type, start.weights_, start.means_, start.precisions_cholesky_,
            max_iter=5, tol=0.0, n_threads=2)
    assert n_iter == 5 and bound == bounds[-1]
    for got, expected in zip(fitted, (model.weights, model.means, model.covariances,
                                      model.precisions_cholesky)):
        np.testing.assert_array_equal(got.reshape(expected.shape), expected)


@needs_compiler
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_consumer_prange_equals_serial_loop(cython_consumer, covariance_type):
    X = _overlapping_blobs(12, n_per_blob=2000)
    start, _ = _start_and_reference(X, covariance_type)
    args = (X, 4, covariance_type, start.weights_, start.means_, start.precisions_cholesky_)
    with threadpool_limits(1, "blas"):
        parallel = cython_consumer.fit_blocks(*args, parallel=True)
        serial = cython_consumer.fit_blocks(*args, parallel=False)
    for a, b in zip(parallel, serial):
        np.testing.assert_array_equal(a, b)
    # Each block's fit is a fit of those rows: the first block against the Python API's
    # iterations on it from the same start.
    W, M, C, P, n_iter, bounds = parallel
    rows = X[: len(X) // 4]
    model = _em.ModelArrays(covariance_type, start.weights_, start.means_, start.precisions_cholesky_)
    total, previous = _em.weights_total(None, len(rows)), -np.inf
    with threadpool_limits(1, "blas"):
        for _ in range(n_iter[0]):
            bound = model.em_step(rows, None, total, 1e-6, 1)
            if abs(bound - previous) < 1e-3:
                break
            previous = bound
    assert bound == bounds[0]
    np.testing.assert_array_equal(M[0], model.means)


# ---------------------------------------------------------------------------
# The C consumer
# ---------------------------------------------------------------------------

def _c_fit(c_consumer, X, covariance_type, start, max_iter=200, tol=TOL, reg_covar=1e-6, n_threads=2):
    arrays = [np.array(a, dtype=np.float64) for a in (start.weights_, start.means_, start.precisions_cholesky_)]
    weights, means, factors = arrays
    covariances = np.zeros_like(factors)
    with threadpool_limits(1, "blas"):
        result = c_consumer.fit(X, fastem.kernels.COVARIANCE_TYPES.get(covariance_type, 7), weights,
                                means, covariances, factors, max_iter, tol, reg_covar, n_threads)
    return (weights, means, covariances, factors), result


@needs_compiler
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_c_consumer_fit_equals_python_fit(c_consumer, covariance_type, n_features):
    X = _overlapping_blobs(n_features, seed=1)
    start, reference = _start_and_reference(X, covariance_type)
    fitted, (n_iter, converged, bound) = _c_fit(c_consumer, X, covariance_type, start)
    _assert_same_bits(fitted, reference)
    assert (n_iter, converged, bound) == (reference.n_iter_, reference.converged_, reference.lower_bound_)


@needs_compiler
def test_failed_fit_leaves_the_callers_arrays_as_they_were(c_consumer):
    # Three components on three distinct 2-D points (copies), reg_covar=0: the
    # first iterations succeed (soft responsibilities), then the components settle
    # on single points and a covariance collapses.  em_fit must hand the model
    # back as it went in, not as the last good iteration left it.
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.2], [0.3, 1.0]]), 50, axis=0)
    covariances = np.array([np.eye(2)] * 3)
    model = _em.ModelArrays("full", np.ones(3) / 3, [[0.2, 0.1], [0.6, 0.3], [0.4, 0.6]],
                            _em.precision_factors(covariances, "full"), covariances)
    with threadpool_limits(1, "blas"):
        model.em_step(X, None, float(len(X)), 0.0, 1)   # the premise: iteration 1 succeeds
    arrays = [np.ones(3) / 3, np.array([[0.2, 0.1], [0.6, 0.3], [0.4, 0.6]]),
              np.copy(covariances), _em.precision_factors(covariances, "full")]
    before = [np.copy(a) for a in arrays]
    weights, means, covs, factors = arrays
    with threadpool_limits(1, "blas"), pytest.raises(RuntimeError, match="status -3"):
        c_consumer.fit(X, fastem.kernels.COVARIANCE_TYPES["full"], weights, means, covs, factors,
                       200, 0.0, 0.0, 2)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@needs_compiler
def test_c_consumer_gets_status_codes_not_crashes(c_consumer):
    X = _overlapping_blobs(3)
    start, _ = _start_and_reference(X, "full")
    bad_argument = f"status {fastem.kernels.STATUS_CODES['FASTEM_BAD_ARGUMENT']}"
    spherical, _ = _start_and_reference(X, "spherical")
    with pytest.raises(RuntimeError, match=bad_argument):   # an unknown covariance type
        _c_fit(c_consumer, X, "no such type", spherical)
    negative = fastem.GaussianMixture(3, max_iter=0).set_params()
    negative.weights_ = np.array([1.5, -0.25, -0.25])
    negative.means_, negative.precisions_cholesky_ = start.means_, start.precisions_cholesky_
    with pytest.raises(RuntimeError, match=bad_argument):   # an invalid model
        _c_fit(c_consumer, X, "full", negative)
    lower = fastem.GaussianMixture(3, max_iter=0).set_params()
    lower.weights_, lower.means_ = start.weights_, start.means_
    lower.precisions_cholesky_ = np.ascontiguousarray(np.swapaxes(start.precisions_cholesky_, 1, 2))
    with pytest.raises(RuntimeError, match=bad_argument):   # scikit-learn's lower factor
        _c_fit(c_consumer, X, "full", lower)
    # Two components on the same point with reg_covar=0: the M-step's Cholesky fails.
    collapsed = np.repeat(X[:3], 50, axis=0)
    with pytest.raises(RuntimeError, match=f"status {fastem.kernels.STATUS_CODES['FASTEM_ILL_DEFINED']}"):
        _c_fit(c_consumer, collapsed, "full", start, reg_covar=0.0)


def test_model_is_unchanged_when_a_step_fails():
    X = _overlapping_blobs(3)
    start, _ = _start_and_reference(X, "full")
    collapsed = np.repeat(X[:3], 50, axis=0)
    model = _em.ModelArrays("full", start.weights_, start.means_, start.precisions_cholesky_)
    before = [np.copy(a) for a in (model.weights, model.means, model.precisions_cholesky)]
    with pytest.raises(ValueError, match="reg_covar"), threadpool_limits(1, "blas"):
        model.em_step(collapsed, None, float(len(collapsed)), 0.0, 1)
    for a, b in zip(before, (model.weights, model.means, model.precisions_cholesky)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler: cannot check the header as C++")
def test_header_compiles_as_cpp(tmp_path):
    source = tmp_path / "use_header.cpp"
    source.write_text(
        '#include "fastem.h"\n'
        "int call(const fastem_api *api, fastem_gmm *model, const double *stats) {\n"
        "    return api->m_step(model, stats, 1e-6);\n"
        "}\n"
    )
    done = subprocess.run(
        ["c++", "-fsyntax-only", "-Wall", "-Werror", f"-I{fastem.get_include()}",
         f"-I{sysconfig.get_paths()['include']}", str(source)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr


@needs_compiler
def test_c_example_checks_sizes_before_fastem_writes(c_consumer):
    X = _overlapping_blobs(3)
    start, _ = _start_and_reference(X, "full")
    weights, means, factors = (np.array(a) for a in (start.weights_, start.means_, start.precisions_cholesky_))
    with pytest.raises(ValueError, match="do not fit"):
        c_consumer.fit(X, fastem.kernels.COVARIANCE_TYPES["full"], weights[:2].copy(), means,
                       np.zeros_like(factors), factors, 10, TOL, 1e-6, 1)
    with pytest.raises(ValueError, match="same columns"):
        c_consumer.fit(X[:, :2].copy(), fastem.kernels.COVARIANCE_TYPES["full"], weights, means,
                       np.zeros_like(factors), factors, 10, TOL, 1e-6, 1)
