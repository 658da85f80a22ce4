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
    total = _em.sum_weights(None, len(X))
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
    total, previous = _em.sum_weights(None, len(rows)), -np.inf
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


# ---------------------------------------------------------------------------
# Minor 1: supplied responsibilities, and the append-only versioning
# ---------------------------------------------------------------------------

GIVEN_CONSUMER = r"""
#include <Python.h>
#include <stdint.h>
#include "fastem.h"

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define STR2(x) #x
#define STR(x) STR2(x)

static const fastem_api *api;
static int api_minor = -1;

/* minor() -> the minor version fastem_import_minor() reported. */
static PyObject *minor(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return PyLong_FromLong(api_minor);
}

/* given(single, X, n, ldx, w, resp, ld_resp, cov_type, weights, means, covs, factors, k, d,
 *       n_threads, stats) -> status; every array an address (0: NULL). */
static PyObject *given(PyObject *self, PyObject *args)
{
    unsigned long long x, w, r, weights, means, covs, factors, stats;
    long long n, ldx, ld_resp, k, d;
    int single, cov_type, n_threads, status;
    fastem_gmm model;
    (void)self;
    if (!PyArg_ParseTuple(args, "pKLLKKLiKKKKLLiK", &single, &x, &n, &ldx, &w, &r, &ld_resp,
                          &cov_type, &weights, &means, &covs, &factors, &k, &d, &n_threads, &stats))
        return NULL;
    model.n_components = k;
    model.n_features = d;
    model.covariance_type = cov_type;
    model.weights = (double *)(uintptr_t)weights;
    model.means = (double *)(uintptr_t)means;
    model.covariances = (double *)(uintptr_t)covs;
    model.precisions_cholesky = (double *)(uintptr_t)factors;
    Py_BEGIN_ALLOW_THREADS
    if (single)
        status = api->accumulate_given_f32((const float *)(uintptr_t)x, n, ldx,
                                           (const double *)(uintptr_t)w,
                                           (const double *)(uintptr_t)r, ld_resp, &model,
                                           n_threads, (double *)(uintptr_t)stats);
    else
        status = api->accumulate_given_f64((const double *)(uintptr_t)x, n, ldx,
                                           (const double *)(uintptr_t)w,
                                           (const double *)(uintptr_t)r, ld_resp, &model,
                                           n_threads, (double *)(uintptr_t)stats);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(status);
}

/* fit(X, n, ldx, cov_type, weights, means, covs, factors, k, d, max_iter, tol)
 * -> (status, n_iter, converged, lower_bound) */
static PyObject *fit(PyObject *self, PyObject *args)
{
    unsigned long long x, weights, means, covs, factors;
    long long n, ldx, k, d;
    int cov_type, max_iter, status, n_iter = -1, converged = -1;
    double tol, bound = 0.0;
    fastem_gmm model;
    (void)self;
    if (!PyArg_ParseTuple(args, "KLLiKKKKLLid", &x, &n, &ldx, &cov_type, &weights, &means,
                          &covs, &factors, &k, &d, &max_iter, &tol))
        return NULL;
    model.n_components = k;
    model.n_features = d;
    model.covariance_type = cov_type;
    model.weights = (double *)(uintptr_t)weights;
    model.means = (double *)(uintptr_t)means;
    model.covariances = (double *)(uintptr_t)covs;
    model.precisions_cholesky = (double *)(uintptr_t)factors;
    Py_BEGIN_ALLOW_THREADS
    status = api->em_fit_f64((const double *)(uintptr_t)x, n, ldx, NULL, &model, max_iter, tol,
                             1e-6, 1, NULL, &n_iter, &converged, &bound);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("iiid", status, n_iter, converged, bound);
}

static PyMethodDef methods[] = {
    {"minor", minor, METH_NOARGS, NULL},
    {"given", given, METH_VARARGS, NULL},
    {"fit", fit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, STR(MODULE), NULL, -1, methods};

PyMODINIT_FUNC CAT(PyInit_, MODULE)(void)
{
    api = fastem_import_minor(&api_minor);
    if (api == NULL)
        return NULL;
    return PyModule_Create(&definition);
}
"""

# Consumer builds: name -> (header edit, extra macros).  A header edit simulates a
# consumer built against a newer fastem.h than the installed fastem.  Each test
# imports its own: an extension module initialises once per process.
VERSIONED_CONSUMERS = {
    "given_consumer": (None, []),
    "minor_1_consumer": (None, [("FASTEM_API_MINOR_REQUIRED", "1")]),
    "minor_1_required": (None, [("FASTEM_API_MINOR_REQUIRED", "1")]),
    "minor_0_consumer": (None, [("FASTEM_API_MINOR_REQUIRED", "0")]),
    "minor_0_guarded": (None, [("FASTEM_API_MINOR_REQUIRED", "0")]),
    "newer_minor_consumer": (("#define FASTEM_API_MINOR 2", "#define FASTEM_API_MINOR 99"), []),
    "older_minor_required": (("#define FASTEM_API_MINOR 2", "#define FASTEM_API_MINOR 99"),
                             [("FASTEM_API_MINOR_REQUIRED", "0")]),
    "newer_major_consumer": (("#define FASTEM_API_VERSION 1", "#define FASTEM_API_VERSION 2"), []),
}


@pytest.fixture(scope="module")
def versioned_consumers(tmp_path_factory):
    """Folder holding the built consumers (imported by each test: some must fail to import)."""
    tmp = tmp_path_factory.mktemp("versioned_consumers")
    header = (Path(fastem.get_include()) / "fastem.h").read_text()
    extensions = []
    for name, (edit, macros) in VERSIONED_CONSUMERS.items():
        include = tmp / f"include_{name}"
        include.mkdir()
        text = header
        if edit is not None:
            assert text.count(edit[0]) == 1
            text = text.replace(edit[0], edit[1])
        (include / "fastem.h").write_text(text)
        (tmp / f"{name}.c").write_text(GIVEN_CONSUMER)
        extensions.append(
            f'Extension("{name}", ["{name}.c"], include_dirs=[{str(include)!r}], '
            f'define_macros={[("MODULE", name)] + macros!r})'
        )
    (tmp / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        f"setup(ext_modules=[{', '.join(extensions)}])\n"
    )
    done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                          cwd=tmp, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"building the consumers failed:\n{done.stdout}\n{done.stderr}"
    return tmp


def _import_consumer(folder, name):
    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop(name, None)
        return __import__(name)
    finally:
        sys.path.remove(str(folder))


def _random_model(rng, covariance_type, k, d):
    if covariance_type in ("full", "tied"):
        blocks = [a @ a.T / d + np.eye(d) for a in rng.normal(size=(k, d, d))]
        covariances = np.array(blocks) if covariance_type == "full" else blocks[0]
    else:
        covariances = rng.uniform(0.5, 2.0, size=(k, d) if covariance_type == "diag" else k)
    return _em.ModelArrays(covariance_type, rng.dirichlet(np.ones(k)), rng.normal(size=(k, d)),
                           _em.precision_factors(covariances, covariance_type), covariances)


def _c_given(consumer, X, weights, resp, model, n_threads):
    k, d = model.means.shape
    code = fastem.kernels.COVARIANCE_TYPES[model.covariance_type]
    statistic = {"spherical": "diag"}.get(model.covariance_type, model.covariance_type)
    stats = np.full(_em.statistics_size(statistic, k, d), np.nan)
    status = consumer.given(
        X.dtype == np.float32, X.ctypes.data, len(X), X.shape[1],
        0 if weights is None else weights.ctypes.data, resp.ctypes.data, resp.shape[1], code,
        model.weights.ctypes.data, model.means.ctypes.data, model.covariances.ctypes.data,
        model.precisions_cholesky.ctypes.data, k, d, n_threads, stats.ctypes.data)
    return status, stats


@needs_compiler
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_c_accumulate_given_equals_the_python_door(versioned_consumers, covariance_type,
                                                    n_features, dtype):
    consumer = _import_consumer(versioned_consumers, "given_consumer")
    rng = np.random.default_rng(5)
    k = 3
    model = _random_model(rng, covariance_type, k, n_features)
    X = np.ascontiguousarray(rng.normal(size=(2500, n_features + 2)).astype(dtype))
    weights = rng.uniform(size=len(X))
    # Responsibilities with rows k + 2 apart (ld_resp > K): the extra columns are never read.
    wide = np.full((len(X), k + 2), np.nan)
    wide[:, :k] = rng.dirichlet(np.ones(k), size=len(X))
    resp = np.ascontiguousarray(wide[:, :k])
    statistic = {"spherical": "diag"}.get(covariance_type, covariance_type)
    n_stats = _em.statistics_size(statistic, k, n_features)
    lanes = np.zeros((_em.lane_count(n_stats), n_stats))
    with threadpool_limits(1, "blas"):
        _em.accumulate(X, weights, lanes, statistic=statistic, centres=model.means,
                       responsibilities=resp, tied_centre=model.tied_centre(), n_threads=2)
        for n_threads in (1, 2):
            status, stats = _c_given(consumer, X, weights, wide, model, n_threads)
            assert status == fastem.kernels.STATUS_CODES["FASTEM_OK"]
            np.testing.assert_array_equal(stats, _em.reduce_lanes(lanes))


@needs_compiler
def test_c_accumulate_given_rejects_a_short_row_stride(versioned_consumers):
    consumer = _import_consumer(versioned_consumers, "given_consumer")
    rng = np.random.default_rng(2)
    model = _random_model(rng, "diag", 3, 4)
    X = rng.normal(size=(10, 4))
    narrow = np.ones((10, 2))
    status, _ = _c_given(consumer, X, None, narrow, model, 1)
    assert status == fastem.kernels.STATUS_CODES["FASTEM_BAD_ARGUMENT"]


def test_api_minor_is_the_same_in_python_and_the_header():
    header = (Path(fastem.get_include()) / "fastem.h").read_text()
    minor = int(re.search(r"#define FASTEM_API_MINOR (\d+)", header).group(1))
    assert fastem.kernels.API_MINOR == minor == 2


@needs_compiler
def test_a_consumer_of_a_newer_minor_is_refused(versioned_consumers):
    with pytest.raises(ImportError, match=r"needs fastem C API 1\.99.*provides 1\.2"):
        _import_consumer(versioned_consumers, "newer_minor_consumer")


@needs_compiler
def test_a_consumer_needing_an_older_minor_is_accepted(versioned_consumers):
    assert _import_consumer(versioned_consumers, "older_minor_required") is not None


@needs_compiler
def test_a_consumer_requiring_minor_1_loads_on_minor_2(versioned_consumers):
    # Appending the HMM entries (minor 2) must not turn away consumers of 1.1.
    consumer = _import_consumer(versioned_consumers, "minor_1_required")
    assert consumer.minor() == 2


@needs_compiler
def test_a_fastem_without_api_minor_counts_as_minor_0(versioned_consumers, monkeypatch):
    # An older fastem has no API_MINOR: a consumer needing minor 1 must be refused
    # politely, one needing minor 0 must still load.
    monkeypatch.delattr(fastem.kernels, "API_MINOR")
    with pytest.raises(ImportError, match=r"needs fastem C API 1\.1.*provides 1\.0"):
        _import_consumer(versioned_consumers, "minor_1_consumer")
    assert _import_consumer(versioned_consumers, "minor_0_consumer") is not None


@needs_compiler
def test_a_consumer_requiring_minor_0_reads_the_installed_minor(versioned_consumers):
    # The run-time guard of fastem.h: a consumer built to run on any 1.x fastem
    # learns that this one has minor 2, so it may call accumulate_given_* and hmm_*.
    consumer = _import_consumer(versioned_consumers, "minor_0_guarded")
    assert consumer.minor() == fastem.kernels.API_MINOR == 2


@needs_compiler
def test_requiring_a_minor_newer_than_the_header_does_not_compile(tmp_path):
    source = tmp_path / "too_new.c"
    source.write_text('#include "fastem.h"\n')
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    done = subprocess.run(
        cc + ["-fsyntax-only", "-DFASTEM_API_MINOR_REQUIRED=3", f"-I{fastem.get_include()}",
              f"-I{sysconfig.get_paths()['include']}", str(source)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "FASTEM_API_MINOR_REQUIRED is newer" in done.stderr
    # The same file compiles when the requirement is one this header has.
    done = subprocess.run(
        cc + ["-fsyntax-only", "-DFASTEM_API_MINOR_REQUIRED=2", f"-I{fastem.get_include()}",
              f"-I{sysconfig.get_paths()['include']}", str(source)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@needs_compiler
def test_a_consumer_of_another_major_is_refused(versioned_consumers):
    with pytest.raises(ImportError, match="version 2 was built against.*provides version 1"):
        _import_consumer(versioned_consumers, "newer_major_consumer")


@needs_compiler
def test_em_fit_runs_with_max_iter_int_max(versioned_consumers):
    # The iteration counter once overflowed at max_iter = INT_MAX and no iteration ran.
    consumer = _import_consumer(versioned_consumers, "given_consumer")
    rng = np.random.default_rng(4)
    model = _random_model(rng, "diag", 2, 3)
    X = np.concatenate([rng.normal(size=(200, 3)) - 2.0, rng.normal(size=(200, 3)) + 2.0])
    with threadpool_limits(1, "blas"):
        status, n_iter, converged, bound = consumer.fit(
            X.ctypes.data, len(X), 3, fastem.kernels.COVARIANCE_TYPES["diag"],
            model.weights.ctypes.data, model.means.ctypes.data, model.covariances.ctypes.data,
            model.precisions_cholesky.ctypes.data, 2, 3, np.iinfo(np.int32).max, 1e-3)
    assert status == 0 and converged == 1 and 1 <= n_iter < 1000 and np.isfinite(bound)


# ---------------------------------------------------------------------------
# Minor 2: the HMM kernels from C, against the Python wrappers (fastem._hmm).
# ---------------------------------------------------------------------------

HMM_CONSUMER = r"""
#include <Python.h>
#include <stdint.h>
#include "fastem.h"

static const fastem_api *api;

#define PTR(type, address) ((type)(uintptr_t)(address))

/* fb(logf, T, K, pi, A, lengths, S, impl, n_threads, log_probs, post, start, trans) -> status;
 * arrays are addresses, 0 for NULL. */
static PyObject *fb(PyObject *self, PyObject *args)
{
    unsigned long long l, pi, a, n, lp, post, start, trans;
    long long rows, k, s;
    int impl, n_threads, status;
    (void)self;
    if (!PyArg_ParseTuple(args, "KLLKKKLiiKKKK", &l, &rows, &k, &pi, &a, &n, &s, &impl,
                          &n_threads, &lp, &post, &start, &trans))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    status = api->hmm_forward_backward_f64(PTR(const double *, l), rows, k, PTR(const double *, pi),
                                           PTR(const double *, a), PTR(const int64_t *, n), s,
                                           impl, n_threads, PTR(double *, lp), PTR(double *, post),
                                           PTR(double *, start), PTR(double *, trans));
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(status);
}

/* vt(logf, T, K, pi, A, lengths, S, n_threads, log_probs, states) -> status */
static PyObject *vt(PyObject *self, PyObject *args)
{
    unsigned long long l, pi, a, n, lp, states;
    long long rows, k, s;
    int n_threads, status;
    (void)self;
    if (!PyArg_ParseTuple(args, "KLLKKKLiKK", &l, &rows, &k, &pi, &a, &n, &s, &n_threads,
                          &lp, &states))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    status = api->hmm_viterbi_f64(PTR(const double *, l), rows, k, PTR(const double *, pi),
                                  PTR(const double *, a), PTR(const int64_t *, n), s, n_threads,
                                  PTR(double *, lp), PTR(int64_t *, states));
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(status);
}

static PyMethodDef methods[] = {
    {"fb", fb, METH_VARARGS, NULL},
    {"vt", vt, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, "hmm_consumer", NULL, -1, methods};

PyMODINIT_FUNC PyInit_hmm_consumer(void)
{
    api = fastem_import();
    if (api == NULL)
        return NULL;
    return PyModule_Create(&definition);
}
"""


@pytest.fixture(scope="module")
def hmm_consumer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hmm_consumer")
    (tmp / "hmm_consumer.c").write_text(HMM_CONSUMER)
    setup = (
        "import fastem\nfrom setuptools import Extension, setup\n"
        'setup(ext_modules=[Extension("hmm_consumer", ["hmm_consumer.c"], '
        "include_dirs=[fastem.get_include()])])\n"
    )
    return _build(tmp, setup, "hmm_consumer")


def _hmm_problem(rng, k=4, lengths=(1, 7, 300, 45, 2, 120)):
    lengths = np.array(lengths, dtype=np.int64)
    log_frameprob = rng.normal(scale=3.0, size=(lengths.sum(), k)) - 20.0
    startprob = rng.dirichlet(np.ones(k))
    transmat = rng.dirichlet(np.ones(k), size=k)
    return log_frameprob, startprob, transmat, lengths


def _c_forward_backward(consumer, problem, implementation, n_threads, want_posteriors=True):
    from fastem import _hmm

    log_frameprob, startprob, transmat, lengths = problem
    t, k = log_frameprob.shape
    log_probs = np.full(len(lengths), np.nan)
    post, start, trans = np.full((t, k), np.nan), np.full(k, np.nan), np.full((k, k), np.nan)
    address = (lambda a: a.ctypes.data) if want_posteriors else (lambda a: 0)
    status = consumer.fb(log_frameprob.ctypes.data, t, k, startprob.ctypes.data,
                         transmat.ctypes.data, lengths.ctypes.data, len(lengths),
                         _hmm.IMPLEMENTATIONS[implementation], n_threads, log_probs.ctypes.data,
                         address(post), address(start), address(trans))
    return status, log_probs, post, start, trans


@needs_compiler
@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_c_hmm_forward_backward_equals_the_python_wrapper(hmm_consumer, implementation):
    from fastem import _hmm

    problem = _hmm_problem(np.random.default_rng(11))
    expected = _hmm.forward_backward(*problem, implementation=implementation)
    for n_threads in (1, 2):
        status, log_probs, post, start, trans = _c_forward_backward(
            hmm_consumer, problem, implementation, n_threads)
        assert status == fastem.kernels.STATUS_CODES["FASTEM_OK"]
        np.testing.assert_array_equal(log_probs, expected.log_probs)
        np.testing.assert_array_equal(post, expected.posteriors)
        np.testing.assert_array_equal(start, expected.start_counts)
        np.testing.assert_array_equal(trans, expected.trans_counts)
    # NULL posteriors: the forward pass only, the same log-likelihoods.
    status, log_probs, *_ = _c_forward_backward(hmm_consumer, problem, implementation, 2, False)
    assert status == 0
    np.testing.assert_array_equal(log_probs, expected.log_probs)


@needs_compiler
def test_c_hmm_viterbi_equals_the_python_wrapper(hmm_consumer):
    from fastem import _hmm

    log_frameprob, startprob, transmat, lengths = problem = _hmm_problem(np.random.default_rng(12))
    expected = _hmm.viterbi(*problem)
    log_probs, states = np.full(len(lengths), np.nan), np.full(len(log_frameprob), -1, np.int64)
    status = hmm_consumer.vt(log_frameprob.ctypes.data, *log_frameprob.shape, startprob.ctypes.data,
                             transmat.ctypes.data, lengths.ctypes.data, len(lengths), 2,
                             log_probs.ctypes.data, states.ctypes.data)
    assert status == 0
    np.testing.assert_array_equal(log_probs, expected.log_probs)
    np.testing.assert_array_equal(states, expected.states)


@needs_compiler
def test_c_hmm_status_codes(hmm_consumer):
    from fastem import _hmm

    rng = np.random.default_rng(13)
    log_frameprob, startprob, transmat, lengths = _hmm_problem(rng, k=2, lengths=(3, 4))
    # Lengths that do not sum to the rows: a status, not a crash, and nothing written.
    bad = (log_frameprob, startprob, transmat, np.array([3, 5], dtype=np.int64))
    status, log_probs, *_ = _c_forward_backward(hmm_consumer, bad, "log", 1)
    assert status == fastem.kernels.STATUS_CODES["FASTEM_BAD_ARGUMENT"]
    assert np.isnan(log_probs).all()
    # The scaling implementation's underflow is its own status, the log one falls back.
    far = (log_frameprob - 800.0, startprob, transmat, lengths)
    status, *_ = _c_forward_backward(hmm_consumer, far, "scaling", 1)
    assert status == _hmm.UNDERFLOW_STATUS == -5
    status, log_probs, *_ = _c_forward_backward(hmm_consumer, far, "log", 1)
    assert status == 0 and np.isfinite(log_probs).all()
    # An unknown implementation code.
    status = hmm_consumer.fb(log_frameprob.ctypes.data, 7, 2, startprob.ctypes.data,
                             transmat.ctypes.data, lengths.ctypes.data, 2, 7, 1,
                             np.empty(2).ctypes.data, 0, 0, 0)
    assert status == fastem.kernels.STATUS_CODES["FASTEM_BAD_ARGUMENT"]


def test_header_states_the_hmm_underflow_status():
    from fastem import _hmm

    header = (Path(fastem.get_include()) / "fastem.h").read_text()
    assert int(re.search(r"#define FASTEM_UNDERFLOW \((-\d+)\)", header).group(1)) == \
        _hmm.UNDERFLOW_STATUS
