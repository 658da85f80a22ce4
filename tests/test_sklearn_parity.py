"""fastem fails, warns and fits exactly where scikit-learn does, with its words.

Code written against scikit-learn catches its exceptions and matches its
messages (``pytest.raises(ValueError, match=...)``, warning filters), so each
case below is run through both libraries and the outcomes are compared:

- both raise: fastem's exception is an instance of scikit-learn's class and its
  message starts with scikit-learn's full message (fastem may append, never
  reword);
- both fit: the same user-facing warnings (ConvergenceWarning, UserWarning), in
  category and text; NumPy's RuntimeWarnings from scikit-learn's arithmetic are
  not part of the interface;
- a case marked ``kept`` is a difference kept on purpose; its reason is given,
  and both sides are pinned (scikit-learn's behaviour as observed, fastem's as
  designed), so a change on either side shows up here.  README.md's
  "Differences" section lists the same ones;
- a case marked ``rounding`` is decided by rounding noise (a variance of ~1e-33
  from copies of one point), which is not part of the parity: fastem must
  either fit with finite parameters or raise scikit-learn's message.

The cases come from walking scikit-learn 1.9's GaussianMixture, BaseMixture,
``check_array``, ``validate_data``, ``_check_feature_names`` and the parameter
constraints.  Every case is small, so the module runs in a few seconds.  The
feature-name cases need pandas, which the test extra installs.
"""
import contextlib
import functools
import io
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pytest
import scipy.sparse
import sklearn
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import fastem
from _helpers import PARAMETER_NAMES

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _blobs():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 2))
    X[:20] += 6.0
    return X


X = _blobs()
X.setflags(write=False)


# ---------------------------------------------------------------------------
# Running one case through one library
# ---------------------------------------------------------------------------

@dataclass
class Outcome:
    error: Optional[BaseException]
    warnings: list  # (category, message) of the user-facing warnings
    model: object = None

    def describe(self):
        if self.error is None:
            return f"fitted; warnings {[(c.__name__, m[:80]) for c, m in self.warnings]}"
        return f"{type(self.error).__name__}: {self.error}"


def _run(action, cls):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = model = None
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # verbose=True prints
                model = action(cls)
        except Exception as exc:  # noqa: BLE001 - the exception is the outcome
            error = exc
    shown = [(w.category, str(w.message)) for w in caught
             if issubclass(w.category, UserWarning)]
    return Outcome(error, shown, model)


@dataclass
class Case:
    id: str
    action: Callable  # action(GaussianMixture class) -> anything
    kept: str = ""  # the reason, for a difference kept on purpose
    sklearn_check: Callable = None  # kept: what scikit-learn does (Outcome -> None)
    fastem_check: Callable = None  # kept: what fastem does instead
    rounding: bool = False
    pandas: bool = False


def _params(**params):
    return {"n_components": 2, "random_state": 0, **params}


def fit(data=X, **params):
    return lambda cls: cls(**_params(**params)).fit(data)


@functools.lru_cache(maxsize=None)
def _fitted(cls):
    return cls(**_params()).fit(X)


def after_fit(method, *args):
    return lambda cls: getattr(_fitted(cls), method)(*args)


def unfitted(method, *args):
    return lambda cls: getattr(cls(2), method)(*args)


def _with(value, row=3, col=1, dtype=np.float64):
    bad = np.array(X, dtype=dtype)
    bad[row, col] = value
    return bad


def raises(cls, *words):
    """Outcome check: raised `cls` with every word in the message."""
    def check(outcome):
        assert isinstance(outcome.error, cls), outcome.describe()
        for word in words:
            assert word in str(outcome.error), outcome.describe()
    return check


def fits(outcome):
    assert outcome.error is None, outcome.describe()
    if hasattr(outcome.model, "means_"):
        for name in PARAMETER_NAMES:
            assert np.all(np.isfinite(getattr(outcome.model, name))), name


def fits_with_nan(outcome):
    assert outcome.error is None, outcome.describe()
    assert not np.all(np.isfinite(outcome.model.covariances_))


# ---------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------

CASES = []


def case(*args, **kwargs):
    CASES.append(Case(*args, **kwargs))


# Parameters: every constraint of GaussianMixture/BaseMixture, with values of
# the wrong type, out of range, NaN and inf.
BAD_PARAMETERS = {
    "n_components": [0, -1, 1.5, "2", None, 2.0],
    "tol": [-1, -1e-3, np.nan, np.inf, "x", None],
    "reg_covar": [-1e-6, np.nan, np.inf, "0"],
    "max_iter": [-1, 1.5, None],
    "n_init": [0, 2.0],
    "init_params": ["bogus", None, 1, "KMEANS"],
    "random_state": [-1, 2**32, 1.5, "seed", np.random.default_rng(0)],
    "warm_start": [1, "yes", None],
    "verbose": [-1, 1.5, "x"],
    "verbose_interval": [0, 1.5],
    "covariance_type": ["bogus", None, "FULL"],
    "weights_init": [5, "abc", scipy.sparse.csr_matrix([[0.5, 0.5]])],
    "means_init": [3.0],
    "precisions_init": ["x", 1],
}
for _name, _values in BAD_PARAMETERS.items():
    for _value in _values:
        case(f"param-{_name}={_value!r:.30}", fit(**{_name: _value}))

# Values scikit-learn's constraints accept although they look odd.
GOOD_PARAMETERS = {
    "n_components": [np.int64(2)],
    "tol": [True, 1, np.float32(1e-3)],
    "max_iter": [np.int64(50)],
    "random_state": [2**32 - 1, np.int64(3), np.random.RandomState(0)],
    "warm_start": [np.bool_(True)],
    "verbose": [True, 2],
    "weights_init": [(0.5, 0.5), [0.25, 0.75]],
}
for _name, _values in GOOD_PARAMETERS.items():
    for _value in _values:
        case(f"param-ok-{_name}={_value!r:.30}", fit(**{_name: _value}))

case("param-first-in-name-order", fit(n_components=0, tol=-1))
case("param-before-X", lambda cls: cls(n_components=0).fit(X[:, 0]))

# X at fit (validate_data with dtype float64/float32, at least 2 samples).
_complex = np.array([[1 + 2j, 3], [4, 5j], [1, 1]])
_matrix = np.asmatrix(X)  # built here: np.matrix warns when it is created
FIT_INPUTS = {
    "nan": _with(np.nan),
    "inf": _with(np.inf),
    "-inf": _with(-np.inf),
    "inf-float32": _with(np.inf, dtype=np.float32),
    "inf-float16": _with(np.inf, dtype=np.float16),
    "None": None,
    "scalar": 3.0,
    "1d": X[:, 0],
    "3d": X.reshape(10, 4, 2),
    "empty": X[:0],
    "one-row": X[:1],
    "no-features": np.zeros((5, 0)),
    "complex-array": _complex,
    "complex-list": _complex.tolist(),
    "strings": [["a", "b"], ["c", "d"]],
    "string-array": np.array([["a", "b"], ["c", "d"]]),
    "numeric-strings": [["1", "2"], ["3", "4"], ["5", "7"]],
    "object-with-None": np.array([[None, 1], [2, 3], [4, 5]], dtype=object),
    "ragged": [[1, 2], [3]],
    "sparse": scipy.sparse.csr_matrix(X),
    "np.matrix": _matrix,
    "dict": {"a": 1},
    "bools": X > 0,
    "ints": np.round(X * 10).astype(np.int64),
    "float32": X.astype(np.float32),
    "list": X.tolist(),
    "fortran-order": np.asfortranarray(X),
}
for _label, _data in FIT_INPUTS.items():
    case(f"fit-X-{_label}", fit(_data))
    if _label in ("nan", "sparse", "1d", "complex-array"):
        case(f"fit_predict-X-{_label}", lambda cls, d=_data: cls(**_params()).fit_predict(d))
case("fit-fewer-samples-than-components", fit(X[:3], n_components=5))

# X after fit (validate_data with reset=False, dtype "numeric").
PREDICT_INPUTS = {
    "nan": _with(np.nan),
    "inf": _with(np.inf),
    "scalar": 3.0,
    "1d": X[:, 0],
    "3d": X.reshape(10, 4, 2),
    "empty": X[:0],
    "no-features": np.zeros((5, 0)),
    "more-features": np.hstack([X, X[:, :1]]),
    "fewer-features": X[:, :1],
    "strings": [["a", "b"], ["c", "d"]],
    "numeric-strings": np.array([["1", "2"], ["3", "4"]]),
    "complex-list": [[1 + 2j, 3], [4, 5j]],
    "object-with-None": np.array([[None, 1], [2, 3]], dtype=object),
    "sparse": scipy.sparse.csr_matrix(X),
    "ints": np.round(X).astype(np.int64),
}
for _method in ["predict", "predict_proba", "score_samples", "score", "bic", "aic"]:
    for _label, _data in PREDICT_INPUTS.items():
        case(f"{_method}-X-{_label}", after_fit(_method, _data))
    case(f"{_method}-not-fitted", unfitted(_method, X))
case("sample-not-fitted", unfitted("sample", 3))

# sample(n_samples)
for _n in [0, -3, 0.5, "3", None, 1.5, 5]:
    case(f"sample-{_n!r}", after_fit("sample", _n))

# Initial parameters (_check_weights, _check_means, _check_precisions).
WEIGHTS = {
    "shape3": [0.2, 0.3, 0.5],
    "shape1": [1.0],
    "shape1x2": [[0.5, 0.5]],
    "3d": np.full((1, 1, 2), 0.5),
    "0d": np.array(0.5),
    "empty": [],
    "nan": [0.5, np.nan],
    "inf": [np.inf, 0.5],
    "range": [1.5, -0.5],
    "not-normalised": [0.3, 0.3],
    "float64-off-by-5e-7": np.array([0.5, 0.5 + 5e-7]),
    "float64-off-by-5e-9": np.array([0.5, 0.5 + 5e-9]),
    "float32-off-by-5e-7": np.array([0.5, 0.5 + 5e-7], dtype=np.float32),
    "strings": ["a", "b"],
    "complex": np.array([0.5 + 1j, 0.5]),
    "dict": {"a": 1},
    "object-with-None": np.array([0.5, None], dtype=object),
}
for _label, _value in WEIGHTS.items():
    case(f"weights_init-{_label}", fit(weights_init=_value))

MEANS = {
    "shape3x2": np.zeros((3, 2)),
    "shape2x3": np.zeros((2, 3)),
    "shape2": np.zeros(2),
    "3d": np.zeros((1, 2, 2)),
    "nan": [[0.0, np.nan], [1.0, 1.0]],
    "inf": [[0.0, np.inf], [1.0, 1.0]],
    "strings": [["a", "b"], ["c", "d"]],
    "complex": np.array([[0, 1j], [1, 1]]),
}
for _label, _value in MEANS.items():
    case(f"means_init-{_label}", fit(means_init=_value))

GOOD_PRECISIONS = {
    "full": np.stack([np.eye(2), 2.0 * np.eye(2)]),
    "tied": np.eye(2),
    "diag": np.ones((2, 2)),
    "spherical": np.ones(2),
}
for _cov, _good in GOOD_PRECISIONS.items():
    _nan = _good.copy()
    _nan.flat[0] = np.nan
    _inf = _good.copy()
    _inf.flat[0] = np.inf
    for _label, _value in {"short": _good[..., :1], "long": np.concatenate([_good, _good[:1]]),
                           "extra-axis": _good[None], "nan": _nan, "inf": _inf,
                           "good": _good}.items():
        case(f"precisions_init-{_cov}-{_label}",
             fit(covariance_type=_cov, precisions_init=_value))
NOT_VALID_PRECISIONS = {
    "full-indefinite": ("full", np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])),
    "full-zero": ("full", np.stack([np.eye(2), np.zeros((2, 2))])),
    "full-not-symmetric": ("full", np.stack([np.eye(2), [[2.0, 0.5], [0.0, 2.0]]])),
    "full-4d": ("full", np.zeros((2, 2, 2, 1))),
    "tied-indefinite": ("tied", [[1.0, 2.0], [2.0, 1.0]]),
    "tied-singular": ("tied", [[1.0, 1.0], [1.0, 1.0]]),
    "tied-not-symmetric": ("tied", [[2.0, 0.5], [0.0, 2.0]]),
    "tied-symmetric-within-isclose": ("tied", [[2.0, 0.5 + 1e-9], [0.5, 2.0]]),
    "diag-negative": ("diag", [[1.0, 1.0], [1.0, -1.0]]),
    "diag-zero": ("diag", [[1.0, 0.0], [1.0, 1.0]]),
    "spherical-negative": ("spherical", [1.0, -2.0]),
    "spherical-zero": ("spherical", [0.0, 1.0]),
}
for _label, (_cov, _value) in NOT_VALID_PRECISIONS.items():
    case(f"precisions_init-{_label}", fit(covariance_type=_cov, precisions_init=_value))
case("initial-weights-checked-before-means",
     fit(weights_init=[0.3, 0.3], means_init=np.zeros((3, 2))))
case("initial-means-checked-before-precisions",
     fit(means_init=np.zeros((3, 2)), precisions_init=np.ones(5), covariance_type="spherical"))

# Convergence
case("convergence-warning-max_iter", fit(max_iter=2, tol=0.0))
case("convergence-warning-n_init", fit(max_iter=1, tol=0.0, n_init=3))
case("no-convergence-warning-max_iter-0", fit(max_iter=0))
case("converges", fit(tol=1e-2))

# Degenerate data. Every component on copies of one exactly representable
# point, reg_covar=0: the covariance is exactly zero, its factorisation fails.
_ONE_POINT = np.tile([1.0, 2.0], (30, 1))
case("degenerate-one-point-full-reg0", fit(_ONE_POINT, n_components=1, reg_covar=0.0))
case("degenerate-one-point-full-reg0-float32",
     fit(_ONE_POINT.astype(np.float32), n_components=1, reg_covar=0.0))
case("degenerate-one-point-full-default-reg", fit(_ONE_POINT, n_components=1))
for _cov in ("tied", "diag", "spherical"):
    # scikit-learn's tied/diag/spherical covariances subtract large sums and
    # leave rounding noise where fastem's (moments about the means) leave 0.
    case(f"degenerate-one-point-{_cov}-reg0", fit(_ONE_POINT, n_components=1, reg_covar=0.0,
                                                   covariance_type=_cov), rounding=True)

# A component collapsed onto two values 16 ulps apart (at 1000): a variance of
# ~1e-24, tiny but positive, so its Cholesky factor exists. scikit-learn
# carries on; so must fastem (reg_covar=0).
_near = 1000.0 + np.arange(2) * 16 * np.spacing(1000.0)
_COLLAPSED = np.repeat(_near, 20)[:, None]
case("collapsed-tiny-variance-full-reg0", fit(_COLLAPSED, n_components=1, reg_covar=0.0))
for _cov in ("tied", "diag", "spherical"):
    case(f"collapsed-tiny-variance-{_cov}-reg0",
         fit(_COLLAPSED, n_components=1, reg_covar=0.0, covariance_type=_cov), rounding=True)
_COLLAPSED_2D = np.column_stack([_COLLAPSED[:, 0], np.linspace(-1.0, 1.0, 40)])
case("collapsed-feature-full-reg0", fit(_COLLAPSED_2D, n_components=1, reg_covar=0.0))

# One component far from every point: its responsibilities underflow to 0,
# it keeps only the count floor. With reg_covar its covariance is reg_covar;
# without, it is exactly zero and ill-defined.
_FAR = dict(means_init=[[0.0, 0.0], [1e3, 1e3]], weights_init=[0.5, 0.5])
for _cov in ("full", "diag", "spherical"):
    _prec = {"full": np.stack([np.eye(2)] * 2), "diag": np.ones((2, 2)),
             "spherical": np.ones(2)}[_cov]
    case(f"empty-component-{_cov}", fit(X, covariance_type=_cov, precisions_init=_prec,
                                        max_iter=3, **_FAR))
    case(f"empty-component-{_cov}-reg0", fit(X, covariance_type=_cov, precisions_init=_prec,
                                             reg_covar=0.0, max_iter=3, **_FAR))

# A component so far away that its squared distances overflow: its
# log-densities are -inf, the other component takes every row.
_SPLIT = dict(weights_init=[0.5, 0.5], precisions_init=np.stack([np.eye(2)] * 2))
case("component-at-1e160", fit(X, means_init=[[1e160, 0.0], [0.0, 0.0]], **_SPLIT))

# Warm start continues; n_init is ignored after the first fit.
case("warm-start-twice", lambda cls: cls(**_params(warm_start=True, max_iter=3, tol=0.0))
     .fit(X).fit(X))


# ---------------------------------------------------------------------------
# Feature names (DataFrames)
# ---------------------------------------------------------------------------

def _frame(data, columns):
    import pandas as pd

    return pd.DataFrame(np.asarray(data), columns=columns)


def _names_case(fit_columns, predict_columns, predict_data=X):
    def action(cls):
        fit_X = X if fit_columns is None else _frame(X, fit_columns)
        model = cls(**_params()).fit(fit_X)
        data = predict_data if predict_columns is None else _frame(predict_data, predict_columns)
        return model.predict(data)
    return action


_WIDE = np.hstack([X] * 4)
case("names-fit-frame-predict-array", _names_case(["a", "b"], None), pandas=True)
case("names-fit-array-predict-frame", _names_case(None, ["a", "b"]), pandas=True)
case("names-same", _names_case(["a", "b"], ["a", "b"]), pandas=True)
case("names-differ", _names_case(["a", "b"], ["a", "c"]), pandas=True)
case("names-reordered", _names_case(["a", "b"], ["b", "a"]), pandas=True)
case("names-more-than-five-unseen",
     lambda cls: cls(**_params()).fit(_frame(X, ["a", "b"]))
     .predict(_frame(_WIDE, list("cdefghij"))), pandas=True)
case("names-mixed-types-at-fit", lambda cls: cls(**_params()).fit(_frame(X, ["a", 1])),
     pandas=True)
case("names-integers-are-not-names", lambda cls: cls(**_params()).fit(_frame(X, [0, 1]))
     .predict(X), pandas=True)
case("series-at-fit", lambda cls: cls(**_params()).fit(_frame(X, ["a", "b"])["a"]),
     pandas=True)
def _nullable_frame(kind, with_na):
    def action(cls):
        import pandas as pd

        first = pd.array([1, None if with_na else 2] + list(range(38)), dtype=kind)
        frame = pd.DataFrame({"a": first, "b": X[:, 1]})
        return cls(**_params()).fit(frame).predict(frame)
    return action


for _kind in ("Int64", "Float64"):
    case(f"frame-{_kind}", _nullable_frame(_kind, False), pandas=True)
    case(f"frame-{_kind}-with-NA", _nullable_frame(_kind, True), pandas=True)
case("frame-string-column", lambda cls: cls(**_params()).fit(
    _frame(np.column_stack([["x"] * 40, X[:, 1]]).astype(object), ["a", "b"])), pandas=True)
case("frame-float32", lambda cls: cls(**_params()).fit(_frame(X.astype(np.float32), ["a", "b"]))
     .means_.dtype, pandas=True)


# ---------------------------------------------------------------------------
# Differences kept on purpose (also in README.md, "Differences from scikit-learn")
# ---------------------------------------------------------------------------

_HUGE = (np.random.default_rng(3).normal(size=(200, 2)) * 1e30).astype(np.float32)
for _cov in COVARIANCE_TYPES:
    case(f"float32-data-at-1e30-{_cov}", fit(_HUGE, covariance_type=_cov),
         kept="never inf or NaN parameters: covariances of 1e60 do not fit in float32; "
              "scikit-learn (computing in float32) ends with inf/NaN or a SciPy error, "
              "fastem (computing in float64) refuses to store them and says to rescale",
         sklearn_check=(raises(ValueError, "infs or NaNs") if _cov in ("full", "tied")
                        else fits_with_nan),
         fastem_check=raises(ValueError, "do not fit in float32", "Rescale"))
case("log-likelihood-not-finite", fit(X, means_init=[[1e200, 1e200], [-1e200, -1e200]], **_SPLIT),
     kept="every component's log-density overflows to -inf: scikit-learn goes on with NaN "
          "responsibilities until SciPy refuses them; fastem stops at the non-finite "
          "log-likelihood and says so",
     sklearn_check=raises(ValueError, "infs or NaNs"),
     fastem_check=raises(ValueError, "The log-likelihood is not finite"))
case("sample_weight", lambda cls: cls(**_params()).fit(X, sample_weight=np.ones(len(X))),
     kept="fastem accepts sample_weight in fit, fit_predict, score, bic and aic",
     sklearn_check=raises(TypeError, "sample_weight"), fastem_check=fits)
case("n_threads", lambda cls: cls(**_params(n_threads=2)).fit(X),
     kept="fastem's own parameter (OpenMP threads)",
     sklearn_check=raises(TypeError, "n_threads"), fastem_check=fits)
case("n_threads-invalid", lambda cls: cls(**_params(n_threads=0)).fit(X),
     kept="fastem's own parameter, validated in scikit-learn's style",
     sklearn_check=raises(TypeError, "n_threads"),
     fastem_check=raises(fastem.exceptions.InvalidParameterError,
                         "The 'n_threads' parameter of GaussianMixture must be an int in the "
                         "range [1, inf) or None. Got 0 instead."))
case("set_params-unknown-name", lambda cls: cls(2).set_params(bogus=1),
     kept="the list of valid parameters names fastem's n_threads too",
     sklearn_check=raises(ValueError, "Invalid parameter 'bogus' for estimator "
                          "GaussianMixture(n_components=2). Valid parameters are: ["),
     fastem_check=raises(ValueError, "Invalid parameter 'bogus' for estimator "
                         "GaussianMixture(n_components=2). Valid parameters are: [",
                         "'n_threads'"))
for _method in ("bic", "aic"):
    case(f"{_method}-X-list", after_fit(_method, X.tolist()),
         kept="scikit-learn reads X.shape of the unvalidated X and fails on a list "
              "(AttributeError); fastem validates X first and scores it",
         sklearn_check=raises(AttributeError, "shape"), fastem_check=fits)
case("max_iter-0-with-all-initial-parameters",
     fit(max_iter=0, weights_init=[0.5, 0.5], means_init=[[0.0, 0.0], [6.0, 6.0]],
         precisions_init=np.stack([np.eye(2)] * 2)),
     kept="scikit-learn 1.9 never sets covariances_ here (AttributeError); fastem "
          "returns the given parameters",
     sklearn_check=raises(AttributeError, "covariances_"), fastem_check=fits)
case("warm-start-with-other-n_features",
     lambda cls: cls(**_params(warm_start=True)).fit(X).fit(np.hstack([X, X])),
     kept="scikit-learn fails inside NumPy (a matmul shape error); fastem names the "
          "mismatch",
     sklearn_check=raises(ValueError, "matmul"),
     fastem_check=raises(ValueError, "X has 4 features, but the warm start holds a model "
                         "with 2 features"))
case("n_components-True", fit(n_components=True),
     kept="a bool passes scikit-learn's int constraint; both then fail with a TypeError "
          "inside their k-means, each worded by its own internals",
     sklearn_check=raises(TypeError, "integer"), fastem_check=raises(TypeError, "integer"))
case("kmeans-on-fewer-distinct-points-than-components", fit(_ONE_POINT),
     kept="fastem's k-means is its own (see README) and does not emit KMeans's "
          "'Number of distinct clusters' ConvergenceWarning",
     sklearn_check=lambda o: (fits(o), _assert_warned(o, "Number of distinct clusters")),
     fastem_check=lambda o: (fits(o), _assert_not_warned(o)))


def _assert_warned(outcome, text):
    assert any(text in message for _, message in outcome.warnings), outcome.describe()


def _assert_not_warned(outcome):
    assert outcome.warnings == [], outcome.describe()


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

def _assert_same(sk, fe):
    if sk.error is not None:
        assert fe.error is not None, (
            f"scikit-learn raised {type(sk.error).__name__}: {sk.error}\nfastem: {fe.describe()}")
        assert isinstance(fe.error, type(sk.error)), (
            f"scikit-learn raised {type(sk.error)}, fastem {type(fe.error)}: {fe.error}")
        assert str(fe.error).startswith(str(sk.error)), (
            f"messages differ\nscikit-learn: {sk.error!s}\nfastem:       {fe.error!s}")
    else:
        assert fe.error is None, f"scikit-learn fitted, fastem raised {fe.describe()}"
        fits(fe)
    assert len(fe.warnings) == len(sk.warnings), (
        f"warnings differ\nscikit-learn: {sk.warnings}\nfastem:       {fe.warnings}")
    for (sk_cat, sk_msg), (fe_cat, fe_msg) in zip(sk.warnings, fe.warnings):
        assert issubclass(fe_cat, sk_cat), (sk_cat, fe_cat)
        assert fe_msg.startswith(sk_msg), (sk_msg, fe_msg)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_errors_warnings_and_fits_as_sklearn(case):
    if case.pandas:
        pytest.importorskip("pandas")
    sk = _run(case.action, SkGaussianMixture)
    fe = _run(case.action, fastem.GaussianMixture)
    if case.kept:
        case.sklearn_check(sk)
        case.fastem_check(fe)
    elif case.rounding:
        if fe.error is None:
            fits(fe)
        else:
            assert isinstance(fe.error, ValueError)
            assert str(fe.error).startswith("Fitting the mixture model failed because some "
                                            "components have ill-defined empirical covariance")
    else:
        _assert_same(sk, fe)


def test_the_reference_is_scikit_learn_1_9():
    # The texts above are scikit-learn 1.9's; another version may word them otherwise.
    assert sklearn.__version__.startswith("1.9"), sklearn.__version__


def test_cases_cover_every_parameter():
    constrained = set(SkGaussianMixture._parameter_constraints)
    assert constrained <= set(BAD_PARAMETERS), constrained - set(BAD_PARAMETERS)


def test_invalid_parameter_error_is_sklearns():
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError) as info:
        fastem.GaussianMixture(tol=-1).fit(X)
    assert isinstance(info.value, fastem.exceptions.InvalidParameterError)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_invalid_parameter_error_is_sklearns_when_sklearn_comes_second():
    # fastem imported first, scikit-learn's class only afterwards: the error
    # raised later is still an instance of it.
    code = textwrap.dedent("""
        import fastem
        import numpy as np
        from sklearn.utils._param_validation import InvalidParameterError
        try:
            fastem.GaussianMixture(tol=-1).fit(np.zeros((4, 2)))
        except InvalidParameterError as error:
            assert str(error).startswith("The 'tol' parameter of GaussianMixture must be")
        else:
            raise AssertionError("no InvalidParameterError")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_float32_data_at_1e30_never_gives_non_finite_parameters():
    # scikit-learn returns NaN parameters for diag/spherical here; fastem must
    # never store inf or NaN: it refuses with a message that says to rescale.
    for covariance_type in COVARIANCE_TYPES:
        gm = fastem.GaussianMixture(2, covariance_type=covariance_type, random_state=0)
        with pytest.raises(ValueError, match="Rescale the data"):
            gm.fit(_HUGE)
        assert not hasattr(gm, "covariances_")
        # The same data in float64 fits, with finite parameters.
        gm.fit(_HUGE.astype(np.float64))
        for name in PARAMETER_NAMES:
            assert np.all(np.isfinite(getattr(gm, name))), (covariance_type, name)
