"""``fastem.GaussianMixtureImputer``: scikit-learn's transformer conventions around
``GaussianMixture(missing="em")`` and ``GaussianMixture.impute``.

The fill itself is tested against a NumPy reference with the mixture
(``impute``); here: that the imputer is exactly that fill, its parameter
protocol (``get_params``, ``set_params``, ``clone``), its fitted attributes and
feature names, its errors, and that it stands in scikit-learn's ``Pipeline``
and ``GridSearchCV``.
"""
import inspect
import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastem
from fastem import GaussianMixture, GaussianMixtureImputer
from fastem.exceptions import NotFittedError


def correlated_with_gaps(rng, n=600, fraction=0.2):
    """Two correlated clusters in 3-D, and a copy with `fraction` of the values NaN (MCAR)."""
    cov = np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.6], [0.5, 0.6, 1.0]])
    labels = rng.integers(2, size=n)
    X = rng.multivariate_normal(np.zeros(3), cov, size=n) + np.array([[0, 0, 0], [5, -3, 2]])[labels]
    gaps = rng.random(X.shape) < fraction
    gaps[gaps.all(axis=1), 0] = False      # keep one value per row: not what is tested here
    X_gaps = X.copy()
    X_gaps[gaps] = np.nan
    return X, X_gaps, gaps


@pytest.fixture
def data(rng):
    return correlated_with_gaps(rng)


# ------------------------------------------------------------------ parameters

def test_parameters_and_defaults_are_gaussian_mixtures():
    ours = inspect.signature(GaussianMixtureImputer).parameters
    theirs = inspect.signature(GaussianMixture).parameters
    assert set(ours) <= set(theirs)
    assert {"n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
            "init_params", "random_state", "n_threads"} <= set(ours)
    for name, parameter in ours.items():
        assert parameter.default == theirs[name].default, name
    assert "missing" not in ours    # always "em": that is what the imputer is


def test_get_params_returns_what_init_stored():
    means = np.zeros((2, 3))
    imputer = GaussianMixtureImputer(2, covariance_type="diag", means_init=means, random_state=7)
    params = imputer.get_params()
    assert params["n_components"] == 2 and params["covariance_type"] == "diag"
    assert params["means_init"] is means and params["random_state"] == 7
    assert set(params) == set(inspect.signature(GaussianMixtureImputer).parameters)


def test_set_params_and_unknown_parameter():
    imputer = GaussianMixtureImputer()
    assert imputer.set_params(n_components=3, tol=1e-5) is imputer
    assert imputer.n_components == 3 and imputer.tol == 1e-5
    with pytest.raises(ValueError, match="Invalid parameter 'missing' for estimator"):
        imputer.set_params(missing="error")


def test_repr_shows_the_changed_parameters():
    assert repr(GaussianMixtureImputer()) == "GaussianMixtureImputer()"
    assert repr(GaussianMixtureImputer(3, covariance_type="tied")) == (
        "GaussianMixtureImputer(covariance_type='tied', n_components=3)")


def test_invalid_parameter_names_the_imputer(data):
    _, X_gaps, _ = data
    with pytest.raises(fastem.InvalidParameterError,
                       match="The 'covariance_type' parameter of GaussianMixtureImputer must be"):
        GaussianMixtureImputer(covariance_type="round").fit(X_gaps)
    with pytest.raises(fastem.InvalidParameterError, match="'n_components' parameter of GaussianMixtureImputer"):
        GaussianMixtureImputer(0).fit(X_gaps)


def test_sklearn_clone_copies_parameters_not_the_fit(data):
    from sklearn.base import clone

    _, X_gaps, _ = data
    imputer = GaussianMixtureImputer(2, reg_covar=1e-4, random_state=0).fit(X_gaps)
    copy = clone(imputer)
    assert copy.get_params() == imputer.get_params()
    assert not hasattr(copy, "gaussian_mixture_")
    assert_array_equal(copy.fit_transform(X_gaps), imputer.transform(X_gaps))


def test_sklearn_sees_a_fitted_transformer_that_accepts_nan(data):
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils import get_tags
    from sklearn.utils.validation import check_is_fitted

    _, X_gaps, _ = data
    imputer = GaussianMixtureImputer(random_state=0)
    tags = get_tags(imputer)
    assert tags.input_tags.allow_nan and tags.transformer_tags is not None and tags.requires_fit
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(imputer)
    check_is_fitted(imputer.fit(X_gaps))


# ------------------------------------------------------------------ fit and transform

@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_fit_transform_is_the_mixtures_impute(data, covariance_type):
    _, X_gaps, gaps = data
    before = X_gaps.copy()
    params = dict(n_components=2, covariance_type=covariance_type, random_state=0, n_threads=2)
    imputer = GaussianMixtureImputer(**params)
    filled = imputer.fit_transform(X_gaps)
    assert_array_equal(X_gaps, before)                       # the input is left alone
    mixture = GaussianMixture(missing="em", **params).fit(X_gaps)
    assert imputer.gaussian_mixture_.missing == "em"
    for name in ("weights_", "means_", "covariances_"):
        assert_array_equal(getattr(imputer.gaussian_mixture_, name), getattr(mixture, name))
    assert_array_equal(filled, mixture.impute(X_gaps))
    assert_array_equal(imputer.transform(X_gaps), filled)
    assert_array_equal(imputer.transform(X_gaps.tolist()), filled)
    assert imputer.n_iter_ == mixture.n_iter_ >= 1
    assert not np.isnan(filled).any()
    assert_array_equal(filled[~gaps], X_gaps[~gaps])         # observed values kept exactly
    assert imputer.n_features_in_ == 3 and not hasattr(imputer, "feature_names_in_")


def test_transform_new_rows_and_empty_rows(data):
    _, X_gaps, _ = data
    imputer = GaussianMixtureImputer(2, random_state=0).fit(X_gaps)
    new = np.array([[np.nan, np.nan, np.nan], [0.5, np.nan, 1.0], [1.0, 2.0, 3.0]])
    filled = imputer.transform(new)
    mixture = imputer.gaussian_mixture_
    assert_array_equal(filled[0], mixture.weights_ @ mixture.means_)   # the mixture's mean
    assert_array_equal(filled[1, [0, 2]], [0.5, 1.0]) and np.isfinite(filled[1, 1])
    assert_array_equal(filled[2], new[2])


def test_fill_beats_column_means(data):
    # Correlated features: the conditional mean must be much closer than the column mean.
    X, X_gaps, gaps = data
    filled = GaussianMixtureImputer(2, random_state=0).fit_transform(X_gaps)
    mean_filled = np.where(gaps, np.nanmean(X_gaps, axis=0), X_gaps)
    rmse = np.sqrt(np.mean((filled[gaps] - X[gaps]) ** 2))
    rmse_means = np.sqrt(np.mean((mean_filled[gaps] - X[gaps]) ** 2))
    assert rmse < 0.7 * rmse_means, (rmse, rmse_means)


def test_float32_stays_float32(data):
    _, X_gaps, gaps = data
    X32 = X_gaps.astype(np.float32)
    filled = GaussianMixtureImputer(random_state=0).fit_transform(X32)
    assert filled.dtype == np.float32
    assert_array_equal(filled[~gaps], X32[~gaps])


def test_sample_weight_reaches_the_mixture(data, rng):
    _, X_gaps, _ = data
    weights = rng.uniform(0.5, 2.0, size=len(X_gaps))
    imputer = GaussianMixtureImputer(2, random_state=0).fit(X_gaps, sample_weight=weights)
    mixture = GaussianMixture(2, random_state=0, missing="em").fit(X_gaps, sample_weight=weights)
    assert_array_equal(imputer.gaussian_mixture_.means_, mixture.means_)


def test_pickle_round_trip(data):
    _, X_gaps, _ = data
    imputer = GaussianMixtureImputer(2, random_state=0).fit(X_gaps)
    again = pickle.loads(pickle.dumps(imputer))
    assert_array_equal(again.transform(X_gaps), imputer.transform(X_gaps))


# ------------------------------------------------------------------ errors

def test_not_fitted_errors():
    imputer = GaussianMixtureImputer()
    message = "This GaussianMixtureImputer instance is not fitted yet"
    with pytest.raises(NotFittedError, match=message):
        imputer.transform(np.zeros((2, 2)))
    with pytest.raises(NotFittedError, match=message):
        imputer.get_feature_names_out()


def test_not_fitted_error_is_sklearns_too():
    import sklearn.exceptions

    with pytest.raises(sklearn.exceptions.NotFittedError):
        GaussianMixtureImputer().transform(np.zeros((2, 2)))


def test_feature_count_mismatch(data):
    _, X_gaps, _ = data
    imputer = GaussianMixtureImputer(random_state=0).fit(X_gaps)
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixtureImputer is expecting "
                                         "3 features as input"):
        imputer.transform(X_gaps[:, :2])
    with pytest.raises(ValueError, match="X has 4 features, but GaussianMixtureImputer"):
        imputer.transform(np.column_stack([X_gaps, X_gaps[:, 0]]).tolist())


def test_bad_values_are_errors(data):
    _, X_gaps, _ = data
    bad = X_gaps.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixtureImputer().fit(bad)
    imputer = GaussianMixtureImputer(random_state=0).fit(X_gaps)
    with pytest.raises(ValueError, match="infinity"):
        imputer.transform(bad)
    empty_column = X_gaps.copy()
    empty_column[:, 2] = np.nan
    with pytest.raises(ValueError, match="column 2"):
        GaussianMixtureImputer().fit(empty_column)


# ------------------------------------------------------------------ feature names

def test_feature_names_from_a_dataframe(data):
    pd = pytest.importorskip("pandas")
    _, X_gaps, _ = data
    frame = pd.DataFrame(X_gaps, columns=["height", "weight", "age"])
    imputer = GaussianMixtureImputer(random_state=0).fit(frame)
    assert_array_equal(imputer.feature_names_in_, ["height", "weight", "age"])
    assert_array_equal(imputer.get_feature_names_out(), ["height", "weight", "age"])
    assert_array_equal(imputer.transform(frame),
                       GaussianMixtureImputer(random_state=0).fit(X_gaps).transform(X_gaps))
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- size"):
        imputer.transform(frame.rename(columns={"age": "size"}))
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        imputer.get_feature_names_out(["a", "b", "c"])
    # One warning, in the imputer's name, for an array after fitting with names.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imputer.transform(X_gaps)
    assert [str(w.message) for w in caught] == [
        "X does not have valid feature names, but GaussianMixtureImputer was fitted with feature names"]
    # Refitted on an array, the names are forgotten.
    assert not hasattr(imputer.fit(X_gaps), "feature_names_in_")


def test_feature_names_without_a_dataframe(data):
    _, X_gaps, _ = data
    imputer = GaussianMixtureImputer(random_state=0).fit(X_gaps)
    assert_array_equal(imputer.get_feature_names_out(), ["x0", "x1", "x2"])
    assert_array_equal(imputer.get_feature_names_out(["a", "b", "c"]), ["a", "b", "c"])
    with pytest.raises(ValueError, match="input_features should have length equal to number of "
                                         r"features \(3\), got 2"):
        imputer.get_feature_names_out(["a", "b"])


def test_set_output_pandas(data):
    pd = pytest.importorskip("pandas")
    from sklearn.base import clone

    _, X_gaps, _ = data
    frame = pd.DataFrame(X_gaps, columns=["a", "b", "c"], index=np.arange(len(X_gaps)) * 2)
    imputer = GaussianMixtureImputer(random_state=0).set_output(transform="pandas")
    out = imputer.fit_transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["a", "b", "c"] and out.index.equals(frame.index)
    assert_array_equal(out.to_numpy(), GaussianMixtureImputer(random_state=0).fit_transform(X_gaps))
    assert isinstance(clone(imputer).fit_transform(X_gaps), pd.DataFrame)   # clone keeps the choice
    assert list(imputer.fit(X_gaps).transform(X_gaps).columns) == ["x0", "x1", "x2"]
    assert isinstance(imputer.set_output(transform="default").transform(X_gaps), np.ndarray)
    with pytest.raises(ValueError, match="transform must be 'default', 'pandas' or None"):
        imputer.set_output(transform="polars")


# ------------------------------------------------------------------ scikit-learn

def test_sklearn_check_estimator():
    # scikit-learn's own battery of estimator and transformer checks.
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "does not inherit from BaseEstimator", skipped checks
        results = check_estimator(GaussianMixtureImputer(random_state=0), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert len(results) > 40 and failed == []


def test_in_a_pipeline_before_a_regression(data, rng):
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    X, X_gaps, _ = data
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=len(X))
    pipeline = make_pipeline(GaussianMixtureImputer(2, random_state=0), LinearRegression())
    predicted = pipeline.fit(X_gaps, y).predict(X_gaps)
    # The pipeline is the two steps by hand.
    filled = GaussianMixtureImputer(2, random_state=0).fit_transform(X_gaps)
    assert_array_equal(predicted, LinearRegression().fit(filled, y).predict(filled))
    assert pipeline.score(X_gaps, y) > 0.9


def test_pipeline_set_output_reaches_the_imputer(data):
    pd = pytest.importorskip("pandas")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, X_gaps, _ = data
    frame = pd.DataFrame(X_gaps, columns=["a", "b", "c"])
    pipeline = make_pipeline(GaussianMixtureImputer(random_state=0), StandardScaler())
    out = pipeline.set_output(transform="pandas").fit_transform(frame)
    assert list(out.columns) == ["a", "b", "c"] and not out.isna().any().any()


def test_grid_search_sets_the_imputers_parameters(data, rng):
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, X_gaps, _ = data
    y = X @ np.array([1.0, -2.0, 0.5])
    search = GridSearchCV(
        make_pipeline(GaussianMixtureImputer(random_state=0), LinearRegression()),
        {"gaussianmixtureimputer__n_components": [1, 2]}, cv=3,
    ).fit(X_gaps, y)
    assert search.best_params_["gaussianmixtureimputer__n_components"] in (1, 2)
    assert search.best_estimator_[0].gaussian_mixture_.n_components == search.best_params_[
        "gaussianmixtureimputer__n_components"]


# ------------------------------------------------------------------ README

def test_readme_example_runs(capsys):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("\n## Fitting data with gaps\n"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the README's gaps section must hold one python block"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    rmse, filled, mean_filled = namespace["rmse"], namespace["filled"], namespace["mean_filled"]
    gaps, std = namespace["gaps"], namespace["std"]
    # What the section says: the mixture's fill beats column means, std is 0 where observed.
    assert rmse(filled) < 0.7 * rmse(mean_filled)
    assert np.all(std[~gaps] == 0) and np.all(std[gaps] > 0)
    assert namespace["model"].score(namespace["X_gaps"], namespace["y"]) > 0.9
    # The printed lines the README shows under the example.
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert len(lines) == 3, printed
    for line in lines:
        assert line in section, f"the README shows other figures than the example prints: {line!r}"
