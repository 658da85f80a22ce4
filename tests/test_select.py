"""fastem.select: the table, the winner, candidates equal to standalone fits, the schedule, errors, the CLI."""
import json

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastem
from fastem import GaussianMixture, SelectionResult, select
from fastem.cli import main
from fastem.exceptions import ConvergenceWarning

TYPES = ("full", "tied", "diag", "spherical")
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


@pytest.fixture
def three_blobs(make_blobs):
    X, _, _, _ = make_blobs(600, 2, 3)
    return X


def assert_same_fit(a, b):
    for name in FITTED:
        assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.lower_bound_ == b.lower_bound_
    assert a.n_iter_ == b.n_iter_ and a.converged_ == b.converged_


def test_table_shape_content_and_winner(three_blobs):
    X = three_blobs
    result = select(X, n_components=range(1, 6), random_state=0)
    assert isinstance(result, SelectionResult)
    table = result.table
    n_rows = 5 * 4
    assert {"n_components", "covariance_type", "score", "converged", "n_iter", "seconds"} <= set(table)
    assert all(isinstance(column, list) and len(column) == n_rows for column in table.values())
    # K in the order given, then the covariance types in theirs.
    assert table["n_components"] == [k for k in range(1, 6) for _ in TYPES]
    assert table["covariance_type"] == list(TYPES) * 5
    assert table["score"] == table["bic"]
    assert table["held_out"] == [None] * n_rows
    assert len(result.estimators_) == n_rows
    # The winner is the lowest BIC, and the data's three blobs.
    best = int(np.argmin(table["score"]))
    assert result.best_index_ == best
    assert result.best_params_ == {"n_components": table["n_components"][best],
                                   "covariance_type": table["covariance_type"][best]}
    assert result.best_params_["n_components"] == 3
    assert result.best_estimator_ is result.estimators_[best]
    # Every row's scores are the estimator's own.
    for i, estimator in enumerate(result.estimators_):
        assert estimator.n_components == table["n_components"][i]
        assert estimator.covariance_type == table["covariance_type"][i]
        assert table["bic"][i] == estimator.bic(X)
        assert table["aic"][i] == estimator.aic(X)
        assert table["n_parameters"][i] == estimator._n_parameters()
        assert table["converged"][i] is estimator.converged_
        assert table["n_iter"][i] == estimator.n_iter_
        assert table["seed"][i] == 0 and estimator.random_state == 0
        assert estimator.n_threads is None


def test_candidates_equal_standalone_fits_bit_for_bit(three_blobs, rng):
    # n_init=2: the second initialisation's k-means must also come from the same stream.
    X = three_blobs
    weights = rng.uniform(0.5, 2.0, size=len(X))
    result = select(X, [1, 2, 4], sample_weight=weights, random_state=7, n_init=2)
    for i, estimator in enumerate(result.estimators_):
        alone = GaussianMixture(result.table["n_components"][i],
                                covariance_type=result.table["covariance_type"][i],
                                random_state=7, n_init=2).fit(X, sample_weight=weights)
        assert_same_fit(estimator, alone)
        # BIC with weights: n is their sum, as GaussianMixture.bic counts it.
        assert result.table["bic"][i] == alone.bic(X, sample_weight=weights)


@pytest.mark.parametrize("init_params", ["k-means++", "random"])
def test_other_initialisations_equal_standalone_fits(three_blobs, init_params):
    result = select(three_blobs, [2, 3], ["full", "diag"], init_params=init_params, random_state=3)
    for i, estimator in enumerate(result.estimators_):
        alone = GaussianMixture(estimator.n_components, covariance_type=estimator.covariance_type,
                                init_params=init_params, random_state=3).fit(three_blobs)
        assert_same_fit(estimator, alone)


def test_seeds_drawn_per_k_refit_each_candidate(three_blobs):
    # A RandomState draws one seed per K; the seed column refits the candidate.
    result = select(three_blobs, [2, 3], ["tied"], random_state=np.random.RandomState(5))
    stream = np.random.RandomState(5)
    expected = [int(stream.randint(np.iinfo(np.int32).max)) for _ in range(2)]
    assert result.table["seed"] == expected
    for estimator, seed in zip(result.estimators_, expected):
        alone = GaussianMixture(estimator.n_components, covariance_type="tied",
                                random_state=seed).fit(three_blobs)
        assert_same_fit(estimator, alone)


def test_parallel_and_sequential_schedules_give_identical_tables(three_blobs):
    ran = {}
    for n_jobs, n_threads in [(1, 1), (1, 2), (2, 2), (3, 1), (None, 2)]:
        result = select(three_blobs, range(1, 5), random_state=0, n_jobs=n_jobs, n_threads=n_threads)
        ran[n_jobs, n_threads] = result
    reference = ran[1, 1]
    for result in ran.values():
        for column in set(reference.table) - {"seconds"}:
            assert result.table[column] == reference.table[column], column
        for a, b in zip(result.estimators_, reference.estimators_):
            assert_same_fit(a, b)


def test_schedule_follows_the_measured_rule():
    from fastem.select import _schedule

    # By default one candidate at a time, the kernels using every thread (measured).
    assert _schedule([1, 2, 3, 4, 8], 2, None) == [([1, 2, 3, 4, 8], 1, 2)]
    assert _schedule([1, 2], 1, None) == [([1, 2], 1, 1)]
    assert _schedule([1, 8], 4, 2) == [([1, 8], 2, 2)]     # n_jobs shares the threads
    assert _schedule([1, 8], 2, 4) == [([1, 8], 4, 1)]     # never fewer than one thread each


def test_held_out_criterion_picks_the_highest_test_likelihood(make_blobs):
    X, _, _, _ = make_blobs(900, 2, 3)
    train, test = X[:600], X[600:]
    result = select(train, range(1, 5), ["full", "spherical"], "held_out", X_test=test, random_state=0)
    assert result.table["score"] == result.table["held_out"]
    for i, estimator in enumerate(result.estimators_):
        assert result.table["held_out"][i] == estimator.score(test)
    assert result.best_index_ == int(np.argmax(result.table["held_out"]))
    # Held-out likelihood barely penalises an extra component, but fewer than three blobs lose.
    by_k = {}
    for k, score in zip(result.table["n_components"], result.table["held_out"]):
        by_k[k] = max(by_k.get(k, -np.inf), score)
    assert by_k[3] > by_k[2] + 0.1 and result.best_params_["n_components"] >= 3
    # X_test with another criterion still fills the column; the score stays BIC.
    by_bic = select(train, [2], ["diag"], X_test=test, random_state=0)
    assert by_bic.table["score"] == by_bic.table["bic"] and by_bic.table["held_out"][0] is not None


def test_aic_criterion(three_blobs):
    result = select(three_blobs, [1, 2, 3], ["diag"], "aic", random_state=0)
    assert result.table["score"] == result.table["aic"]
    assert result.best_index_ == int(np.argmin(result.table["aic"]))


def test_format_table_marks_the_winner_and_to_frame(three_blobs):
    result = select(three_blobs, [2, 3], ["full", "diag"], random_state=0)
    lines = result.format_table().splitlines()
    assert len(lines) == 1 + 4 + 1
    marked = [line for line in lines[1:-1] if line.startswith("*")]
    assert len(marked) == 1
    assert marked[0].split()[1:3] == [str(result.best_params_["n_components"]),
                                      result.best_params_["covariance_type"]]
    assert lines[-1].startswith("* best by BIC (lower is better)")
    assert "best_params_={'n_components': 3" in repr(result)
    frame = result.to_frame()
    assert list(frame.columns) == list(result.table)
    assert frame["score"].tolist() == result.table["score"]


def test_to_frame_without_pandas_names_the_install(monkeypatch, three_blobs):
    import sys

    result = select(three_blobs, [1], ["diag"], random_state=0)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_frame()


def test_on_candidate_reports_each_fit(three_blobs):
    calls = []
    select(three_blobs, [1, 2], ["full", "tied"], random_state=0, n_jobs=2, n_threads=2,
           on_candidate=lambda done, total, params: calls.append((done, total, params)))
    assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert sorted((p["n_components"], p["covariance_type"]) for _, _, p in calls) == [
        (1, "full"), (1, "tied"), (2, "full"), (2, "tied")]


def test_dataframe_feature_names_reach_the_candidates(three_blobs):
    import pandas

    frame = pandas.DataFrame(three_blobs, columns=["a", "b"])
    result = select(frame, [2], ["full"], random_state=0)
    assert list(result.best_estimator_.feature_names_in_) == ["a", "b"]


def test_one_convergence_warning_for_the_grid(three_blobs):
    with pytest.warns(ConvergenceWarning, match=r"8 of 8 candidates did not converge") as record:
        result = select(three_blobs, [2, 3], max_iter=1, random_state=0)
    assert len(record) == 1
    assert result.table["converged"] == [False] * 8


@pytest.mark.parametrize("kwargs, message", [
    ({"n_components": []}, "n_components is empty"),
    ({"covariance_types": ()}, "covariance_types is empty"),
    ({"n_components": [2, 2]}, "repeats"),
    ({"n_components": [0, 1]}, "integers >= 1"),
    ({"covariance_types": ["full", "banded"]}, "'banded'"),
    ({"criterion": "likelihood"}, "criterion must be one of"),
    ({"criterion": "held_out"}, "needs X_test"),
    ({"n_jobs": 0}, "n_jobs must be"),
    ({"tol": -1.0}, "tol"),
])
def test_bad_arguments_raise_before_fitting(three_blobs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        select(three_blobs, **kwargs)


def test_more_components_than_samples_is_an_error_not_a_skip():
    X = np.arange(10.0).reshape(5, 2)
    with pytest.raises(ValueError, match="n_components = 6, n_samples = 5"):
        select(X, [1, 6])


def test_test_data_must_have_the_features_of_x(three_blobs):
    with pytest.raises(ValueError, match="X_test has 3 features, but X has 2"):
        select(three_blobs, [1], criterion="held_out", X_test=np.zeros((4, 3)))


# ------------------------------------------------------------ command line

def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_select_prints_the_table_and_marks_the_winner(capsys, tmp_path, three_blobs):
    path = tmp_path / "data.npy"
    np.save(path, three_blobs)
    status, out, err = run_cli(capsys, "select", path, "-k", "1-3,5", "--covariance-types", "full,diag")
    assert status == 0, err
    expected = select(three_blobs, [1, 2, 3, 5], ["full", "diag"], random_state=0)
    rows = [line for line in out.splitlines() if line.lstrip("* ")[:1].isdigit()]
    assert len(rows) == 8
    (winner,) = [line for line in rows if line.startswith("*")]
    assert winner.split()[1:3] == ["3", expected.best_params_["covariance_type"]]
    assert "* best by BIC" in out


def test_cli_select_json(capsys, tmp_path, three_blobs):
    path = tmp_path / "data.csv"
    np.savetxt(path, three_blobs, fmt="%.17g", delimiter=",")
    status, out, _ = run_cli(capsys, "select", path, "-k", "2,3", "--covariance-types", "tied",
                             "--criterion", "aic", "--seed", "4", "--json")
    assert status == 0
    report = json.loads(out)
    expected = select(three_blobs, [2, 3], ["tied"], "aic", random_state=4)
    assert report["best_params"] == expected.best_params_
    assert report["table"]["score"] == expected.table["score"]


@pytest.mark.parametrize("argv, message", [
    (["-k", "3-1"], "low <= high"),
    (["-k", "a"], "expected counts"),
    (["--covariance-types", "full,banded"], "expected distinct names"),
    (["--criterion", "held_out"], "needs --test"),
    (["--columns", "0,7"], "column"),
])
def test_cli_select_usage_errors(capsys, tmp_path, three_blobs, argv, message):
    path = tmp_path / "data.npy"
    np.save(path, three_blobs)
    status, out, err = run_cli(capsys, "select", path, *argv)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_select_failed_fit_exits_1(capsys, tmp_path, three_blobs):
    path = tmp_path / "data.npy"
    np.save(path, three_blobs)
    status, out, err = run_cli(capsys, "select", path, "-k", "1-700", "--covariance-types", "diag")
    assert status == 1
    assert "n_components = 700, n_samples = 600" in err and len(err.strip().splitlines()) == 1


def test_cli_select_columns_and_held_out(capsys, tmp_path, three_blobs):
    rng = np.random.default_rng(0)
    wide = np.column_stack([three_blobs, rng.normal(size=len(three_blobs))])
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    np.savetxt(train, wide[:400], fmt="%.17g", delimiter="\t", header="a\tb\tnoise", comments="")
    np.savetxt(test, wide[400:], fmt="%.17g", delimiter="\t", header="a\tb\tnoise", comments="")
    status, out, err = run_cli(capsys, "select", train, "--columns", "a,b", "-k", "2-4",
                               "--covariance-types", "full", "--criterion", "held_out",
                               "--test", test, "--json", "--quiet")
    assert status == 0, err
    report = json.loads(out)
    expected = select(three_blobs[:400], [2, 3, 4], ["full"], "held_out",
                      X_test=three_blobs[400:], random_state=0)
    assert report["table"]["held_out"] == expected.table["held_out"]
    assert report["best_params"] == expected.best_params_


def test_a_failed_candidate_is_named():
    # Two distinct points, no regularisation: every covariance collapses; the first failure to come back is named.
    X = np.repeat([[0.0, 0.0], [1.0, 1.0]], 10, axis=0)
    with pytest.raises(ValueError, match=r"n_components=2, covariance_type='(diag|full)' failed: .*ill-defined"):
        select(X, [2], ["diag", "full"], reg_covar=0.0, random_state=0)


def test_memmap_scores_equal_the_estimators(tmp_path, three_blobs):
    # A memmap is scored block by block, as bic(X) reads it.
    path = tmp_path / "X.npy"
    np.save(path, three_blobs)
    mapped = np.load(path, mmap_mode="r")
    result = select(mapped, [2, 3], ["diag"], random_state=0)
    for i, estimator in enumerate(result.estimators_):
        assert result.table["bic"][i] == estimator.bic(mapped)
        assert_same_fit(estimator, GaussianMixture(estimator.n_components, covariance_type="diag",
                                                   random_state=0).fit(mapped))


def test_readme_selection_example_runs_and_picks_three_full_components():
    import pathlib
    import re
    import warnings

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                if "fastem.select(" in b]
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["result"].best_params_ == {"n_components": 3, "covariance_type": "full"}
    assert namespace["held_out"].criterion == "held_out"
