"""The ``fastem`` command line: the built-in example, data files, saved models, errors.

Also: TSV and ``--columns``, ``--json``, ``fastem predict``, the help texts
and the README's summary of them, and the exit statuses (0, 2 for bad usage
or input, 1 for a failed fit).

Every test but one calls ``fastem.cli.main`` in-process; the last runs the
installed ``fastem`` console script, as a user would.
"""
import json
import os
import re
import runpy
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastem
from fastem.cli import load_model, main, save_model
from fastem.datasets import motivating_example

# The members of a model file (fastem._persistence): a JSON header and the fitted arrays.
NPZ_KEYS = {"header", "weights", "means", "covariances", "precisions_cholesky", "precisions",
            "lower_bounds"}


def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def summary_value(out, label):
    """The value printed after `label` in the summary block, as text."""
    match = re.search(rf"^{re.escape(label)}\s+(\S+)$", out, flags=re.MULTILINE)
    assert match, f"no {label!r} line in:\n{out}"
    return match.group(1)


def fit_like_cli(X, n_components=2, covariance_type="full", seed=0, tol=1e-3, max_iter=100):
    """The estimator the CLI builds for a data file with these options."""
    return fastem.GaussianMixture(
        n_components=n_components, covariance_type=covariance_type, tol=tol,
        max_iter=max_iter, n_init=1, random_state=seed,
    ).fit(X)


def write_csv(path, X, header=None):
    # %.17g round-trips float64 exactly, so the CLI sees the same numbers.
    np.savetxt(path, X, fmt="%.17g", delimiter=",", header=header or "", comments="")
    return path


@pytest.fixture
def blobs_2d(make_blobs):
    X, _, _, _ = make_blobs(300, 2, 2)
    return X


# ------------------------------------------------------------ built-in example

def test_motivating_example_is_seeded_and_shaped():
    X, truth = motivating_example(1000, random_state=3)
    X_again, _ = motivating_example(1000, random_state=3)
    assert X.shape == (1000, 1) and X.dtype == np.float64
    assert_array_equal(X, X_again)
    assert_array_equal(truth.weights, [0.6, 0.4])
    assert_array_equal(truth.means, [2.0, 9.0])
    assert_array_equal(truth.sigmas, [4.0, 2.0])
    with pytest.raises(ValueError, match="n_samples"):
        motivating_example(0)


def test_builtin_example_recovers_true_parameters(capsys, tmp_path):
    # `fastem fit` as in the README: 100000 points drawn with seed 0.
    out_path = tmp_path / "model.npz"
    status, out, err = run_cli(capsys, "fit", "--out", out_path)
    assert status == 0, err
    assert err == ""
    _, truth = motivating_example(100_000, random_state=0)

    with np.load(out_path) as saved:
        assert set(saved.files) == NPZ_KEYS
        assert json.loads(saved["header"].tobytes())["attributes"]["converged"] is True
        order = np.argsort(saved["means"][:, 0])
        weights = saved["weights"][order]
        means = saved["means"][order, 0]
        sigmas = np.sqrt(saved["covariances"][order, 0, 0])

    # Over 30 other seeds, the fit's error had standard deviations 0.0055
    # (weights), 0.054 / 0.019 (means) and 0.030 / 0.016 (sigmas): the overlap
    # makes the wide component's mean much less certain than 4/sqrt(60000).
    # 0.1 on that mean is under 2 of its standard deviations, so another seed
    # could miss it (3 of the 30 did, by up to 0.13); the draw here is fixed
    # (seed 0, errors 0.003 / 0.02 / 0.01), so the check is deterministic and
    # still fails if EM stops early, as at tol=1e-3 (errors 0.14 / 1.4 / 0.7).
    np.testing.assert_allclose(weights, truth.weights, rtol=0, atol=0.02)
    np.testing.assert_allclose(means, truth.means, rtol=0, atol=0.1)
    np.testing.assert_allclose(sigmas, truth.sigmas, rtol=0, atol=0.1)

    # The side-by-side table prints exactly these numbers beside the truth.
    lines = out.splitlines()
    start = lines.index("fitted vs true parameters (components matched by sorting on the mean):")
    assert lines[start + 1].split() == [
        "component", "weight", "true", "weight", "mean", "true", "mean", "sigma", "true", "sigma",
    ]
    printed = np.array([[float(cell) for cell in row.split()[1:]] for row in lines[start + 2:start + 4]])
    expected = np.column_stack([weights, truth.weights, means, truth.means, sigmas, truth.sigmas])
    np.testing.assert_allclose(printed, expected, rtol=1e-5)  # printed with 6 significant digits
    assert summary_value(out, "converged") == "yes"


def test_builtin_example_with_other_k_lists_components_and_truth(capsys):
    status, out, _ = run_cli(capsys, "fit", "-k", "3", "--n-samples", "2000", "--tol", "1e-3")
    assert status == 0
    assert "use -k 2 to compare" in out
    assert "fitted vs true" not in out
    assert "note:" not in out  # an explicit --tol replaces the example's default


# ------------------------------------------------------------ data files

@pytest.mark.parametrize("header", [None, "x,y", "# a comment line\nfeature 1, feature 2"])
def test_csv_with_and_without_header(capsys, tmp_path, blobs_2d, header):
    csv = write_csv(tmp_path / "data.csv", blobs_2d, header=header)
    out_path = tmp_path / "model.npz"
    status, out, err = run_cli(capsys, "fit", csv, "--out", out_path)
    assert status == 0, err
    assert "300 samples x 2 features (float64)" in out
    expected = fit_like_cli(blobs_2d)
    with np.load(out_path) as saved:
        assert_array_equal(saved["means"], expected.means_)
        assert_array_equal(saved["covariances"], expected.covariances_)


def test_single_column_csv_is_one_feature(capsys, tmp_path):
    X, _ = motivating_example(500, random_state=1)
    csv = write_csv(tmp_path / "one.csv", X, header="value")
    status, out, err = run_cli(capsys, "fit", csv)
    assert status == 0, err
    assert "500 samples x 1 feature (float64)" in out
    expected = fit_like_cli(X)
    assert summary_value(out, "BIC") == f"{expected.bic(X):.4f}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("one_dimensional", [False, True])
def test_npy_input(capsys, tmp_path, dtype, one_dimensional):
    X, _ = motivating_example(400, random_state=2)
    X = X.astype(dtype)
    path = tmp_path / "data.npy"
    np.save(path, X.ravel() if one_dimensional else X)
    status, out, err = run_cli(capsys, "fit", path, "--covariance-type", "diag")
    assert status == 0, err
    assert f"400 samples x 1 feature ({np.dtype(dtype).name})" in out
    expected = fit_like_cli(X, covariance_type="diag")
    assert summary_value(out, "AIC") == f"{expected.aic(X):.4f}"


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_mmap_npy_fits_as_the_loaded_file(capsys, tmp_path, dtype):
    X, _ = motivating_example(3000, random_state=3)
    X = np.round(X * 10).astype(dtype)
    path = tmp_path / "data.npy"
    np.save(path, X)
    status, out, err = run_cli(capsys, "fit", path, "--mmap")
    assert status == 0, err
    assert "(memory-mapped): 3000 samples x 1 feature" in out
    loaded_status, loaded_out, _ = run_cli(capsys, "fit", path)
    assert loaded_status == 0
    assert summary_value(out, "BIC") == summary_value(loaded_out, "BIC")


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_saved_and_printed_values_equal_the_estimator(capsys, tmp_path, blobs_2d, covariance_type):
    csv = write_csv(tmp_path / "data.csv", blobs_2d)
    out_path = tmp_path / "model"  # saved under the name given, no ".npz" added
    status, out, err = run_cli(
        capsys, "fit", csv, "--covariance-type", covariance_type, "--out", out_path,
    )
    assert status == 0, err
    model = fit_like_cli(blobs_2d, covariance_type=covariance_type)
    n = blobs_2d.shape[0]

    with np.load(out_path) as saved:
        assert set(saved.files) == NPZ_KEYS
        for key in ["weights", "means", "covariances", "precisions_cholesky"]:
            assert_array_equal(saved[key], getattr(model, key + "_"), err_msg=key)
        header = json.loads(saved["header"].tobytes())
        assert header["params"]["covariance_type"] == covariance_type
        assert header["attributes"]["lower_bound"] == model.lower_bound_
        assert header["attributes"]["n_iter"] == model.n_iter_
        assert header["attributes"]["converged"] == model.converged_

    # Every fitted number appears in the report at the printed precision.
    printed = set(re.findall(r"\S+", out))
    for key in ["weights_", "means_", "covariances_"]:
        for value in np.ravel(getattr(model, key)):
            assert f"{value:.6g}" in printed, (key, value)
    assert summary_value(out, "average log-likelihood per sample") == f"{model.score(blobs_2d):.6g}"
    assert summary_value(out, "total log-likelihood") == f"{model.score(blobs_2d) * n:.4f}"
    assert summary_value(out, "BIC") == f"{model.bic(blobs_2d):.4f}"
    assert summary_value(out, "AIC") == f"{model.aic(blobs_2d):.4f}"
    assert summary_value(out, "iterations") == str(model.n_iter_)
    assert summary_value(out, "converged") == ("yes" if model.converged_ else "no")


def test_wide_data_prints_compact_mean_and_covariance_diagonal(capsys, tmp_path, make_blobs):
    X, _, _, _ = make_blobs(400, 6, 2)
    path = tmp_path / "wide.npy"
    np.save(path, X)
    status, out, err = run_cli(capsys, "fit", path)
    assert status == 0, err
    model = fit_like_cli(X)
    mean_lines = [line for line in out.splitlines() if line.strip().startswith("mean ")]
    diagonal_lines = [line for line in out.splitlines() if "covariance diagonal" in line]
    assert len(mean_lines) == len(diagonal_lines) == 2
    for j in range(2):
        # One line per vector, each value at the compact precision.
        assert all(f"{v:.4g}" in mean_lines[j] for v in model.means_[j])
        assert all(f"{v:.4g}" in diagonal_lines[j] for v in np.diag(model.covariances_[j]))


def test_non_convergence_is_a_warning_line_not_an_error(capsys, tmp_path, blobs_2d):
    csv = write_csv(tmp_path / "data.csv", blobs_2d)
    status, out, err = run_cli(capsys, "fit", csv, "--max-iter", "1", "--tol", "0")
    assert status == 0
    assert summary_value(out, "converged") == "no"
    assert err.startswith("fastem: warning: ") and err.count("\n") == 1


# ------------------------------------------------------------ errors

def _write(path, text):
    path.write_text(text)
    return path


def _save(path, array):
    np.save(path, array)
    return path


ERROR_CASES = {
    "missing file": (lambda tmp: ["fit", tmp / "absent.csv"], "No such file"),
    "NaN in CSV": (lambda tmp: ["fit", _write(tmp / "nan.csv", "a,b\n1,2\n3,nan\n5,6\n")],
                   "data row 2, column 2 is nan"),
    "NaN in .npy": (lambda tmp: ["fit", _save(tmp / "nan.npy", [1.0, np.nan, 2.0])],
                    "data row 2, column 1 is nan"),
    "text in CSV": (lambda tmp: ["fit", _write(tmp / "bad.csv", "1,2\n3,4\n5,x\n")],
                    "line 3, column 2: cannot read 'x' as a number"),
    "ragged CSV": (lambda tmp: ["fit", _write(tmp / "ragged.csv", "1,2\n3,4,5\n")],
                   "line 2: expected 2 values, found 3"),
    "empty CSV": (lambda tmp: ["fit", _write(tmp / "empty.csv", "x,y\n")], "no data"),
    "not a .npy": (lambda tmp: ["fit", _write(tmp / "fake.npy", "1,2\n")], "as a .npy file"),
    "k < 1": (lambda tmp: ["fit", "-k", "0"], "argument -k/--n-components: must be at least 1"),
    "k not a number": (lambda tmp: ["fit", "-k", "two"], "expected an integer"),
    "negative tol": (lambda tmp: ["fit", "--tol", "-1"], "argument --tol"),
    "bad covariance type": (lambda tmp: ["fit", "--covariance-type", "round"], "invalid choice"),
    "n-samples with a file": (
        lambda tmp: ["fit", _write(tmp / "ok.csv", "1\n2\n3\n"), "--n-samples", "5"],
        "--n-samples applies only to the built-in example"),
    "NaN in a mapped .npy": (
        lambda tmp: ["fit", _save(tmp / "nan.npy", [1.0, 2.0, np.nan]), "--mmap"],
        "data row 3, column 1 is nan"),
    "mmap of a CSV": (lambda tmp: ["fit", _write(tmp / "ok.csv", "1\n2\n3\n"), "--mmap"],
                      "--mmap needs a .npy file"),
    "mmap without a file": (lambda tmp: ["fit", "--mmap"], "--mmap applies only to a .npy FILE"),
    "out into a missing directory": (
        lambda tmp: ["fit", "--out", tmp / "no" / "model.npz"], "does not exist"),
    "column name without a header": (
        lambda tmp: ["fit", _write(tmp / "plain.csv", "1,2\n3,4\n5,6\n"), "--columns", "a"],
        "has no header row, so 'a' names no column"),
    "unknown column name": (
        lambda tmp: ["fit", _write(tmp / "named.csv", "a,b\n1,2\n3,4\n"), "--columns", "a,c"],
        "has no column 'c' (its columns: a, b)"),
    "column index out of range": (
        lambda tmp: ["fit", _save(tmp / "x.npy", np.ones((4, 2))), "--columns", "2"],
        "index 2 is out of range"),
    "column chosen twice": (
        lambda tmp: ["fit", _write(tmp / "named.csv", "a,b\n1,2\n3,4\n"), "--columns", "a,0"],
        "chosen twice"),
    "columns without a file": (lambda tmp: ["fit", "--columns", "0"], "apply only to a FILE"),
    "delimiter on a .npy": (
        lambda tmp: ["fit", _save(tmp / "x.npy", np.ones((4, 2))), "--delimiter", ";"],
        "--delimiter applies only to a text FILE"),
    "bad delimiter": (lambda tmp: ["fit", "--delimiter", "ab"], "expected one separator"),
    "comma-separated TSV": (
        lambda tmp: ["fit", _write(tmp / "commas.tsv", "1,2\n3,4\n")],
        "line 2, column 1: cannot read '3,4' as a number"),
    "unknown command": (lambda tmp: ["fits"], "invalid choice"),
    "predict without --model": (lambda tmp: ["predict", "data.csv"], "--model"),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_errors_exit_2_with_one_line(capsys, tmp_path, case):
    make_argv, message = ERROR_CASES[case]
    status, out, err = run_cli(capsys, *make_argv(tmp_path))
    assert status == 2
    assert out == ""
    assert err.startswith("fastem: error: ") and err.count("\n") == 1, err
    assert message in err


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_failed_fit_exits_1_with_one_line(capsys, tmp_path, covariance_type):
    # The file reads fine and the options parse: the fit itself cannot be made.
    csv = _write(tmp_path / "two.csv", "1\n2\n")
    status, out, err = run_cli(capsys, "fit", csv, "-k", "3", "--covariance-type", covariance_type)
    assert status == 1
    assert out == ""
    assert err.startswith("fastem: error: cannot fit: ") and err.count("\n") == 1, err
    assert "n_components = 3, n_samples = 2" in err


def test_no_command_prints_help_and_exits_2(capsys):
    status, out, err = run_cli(capsys)
    assert status == 2
    assert "fit" in err and out == ""


def test_python_m_fastem(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fastem", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("fastem", run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastem {fastem.__version__}"


# ------------------------------------------------------------ console script

def _console_script():
    """The `fastem` script installed beside this interpreter (or in the user scheme)."""
    name = "fastem.exe" if os.name == "nt" else "fastem"
    for scheme in [None, f"{os.name}_user"]:
        directory = sysconfig.get_path("scripts") if scheme is None else sysconfig.get_path("scripts", scheme)
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    pytest.fail(f"the `fastem` console script is not installed beside {sys.executable}")


def test_installed_console_script(tmp_path, blobs_2d):
    csv = write_csv(tmp_path / "data.csv", blobs_2d, header="x,y")
    result = subprocess.run(
        [_console_script(), "fit", str(csv), "-k", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert summary_value(result.stdout, "BIC") == f"{fit_like_cli(blobs_2d).bic(blobs_2d):.4f}"

    missing = subprocess.run(
        [_console_script(), "fit", str(tmp_path / "absent.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("fastem: error: ") and "Traceback" not in missing.stderr


# ------------------------------------------------------------ TSV and --columns

@pytest.fixture
def named_3d(make_blobs):
    X, _, _, _ = make_blobs(300, 3, 2)
    return X


@pytest.mark.parametrize("name, delimiter_option", [
    ("data.tsv", []), ("data.tab", []), ("data.txt", ["--delimiter", "tab"]),
    ("data.txt", ["--delimiter", "\\t"]), ("data.ssv", ["--delimiter", ";"]),
])
def test_tsv_and_other_delimiters_read_as_csv(capsys, tmp_path, named_3d, name, delimiter_option):
    delimiter = ";" if ";" in delimiter_option else "\t"
    path = tmp_path / name
    np.savetxt(path, named_3d, fmt="%.17g", delimiter=delimiter, header=delimiter.join("uvw"),
               comments="")
    status, out, err = run_cli(capsys, "fit", path, *delimiter_option)
    assert status == 0, err
    assert "300 samples x 3 features" in out
    assert summary_value(out, "BIC") == f"{fit_like_cli(named_3d).bic(named_3d):.4f}"


@pytest.mark.parametrize("columns, chosen", [("w,u", [2, 0]), ("2,0", [2, 0]), ("v", [1]),
                                             ("u, 2", [0, 2])])
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".npy"])
def test_columns_choose_features_by_name_or_index(capsys, tmp_path, named_3d, columns, chosen,
                                                  suffix):
    path = tmp_path / f"data{suffix}"
    if suffix == ".npy":
        if not columns.replace(",", "").replace(" ", "").isdigit():
            return  # a .npy file has no column names
        np.save(path, named_3d)
    else:
        delimiter = "\t" if suffix == ".tsv" else ","
        np.savetxt(path, named_3d, fmt="%.17g", delimiter=delimiter,
                   header=delimiter.join("uvw"), comments="")
    status, out, err = run_cli(capsys, "fit", path, "--columns", columns, "--json")
    assert status == 0, err
    expected = fit_like_cli(named_3d[:, chosen])
    report = json.loads(out)
    assert report["data"]["n_features"] == len(chosen)
    assert report["scores"]["bic"] == expected.bic(named_3d[:, chosen])
    assert_array_equal(report["means"], expected.means_)


# ------------------------------------------------------------ --json

@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_json_is_the_only_stdout_and_holds_the_fit(capsys, tmp_path, blobs_2d, covariance_type):
    csv = write_csv(tmp_path / "data.csv", blobs_2d, header="x,y")
    out_path = tmp_path / "model.npz"
    status, out, err = run_cli(capsys, "fit", csv, "--covariance-type", covariance_type,
                               "--json", "--out", out_path)
    assert status == 0, err
    report = json.loads(out)  # fails on anything printed beside the document
    model = fit_like_cli(blobs_2d, covariance_type=covariance_type)
    assert_array_equal(report["weights"], model.weights_)
    assert_array_equal(report["means"], model.means_)
    assert_array_equal(report["covariances"], model.covariances_)
    assert report["n_iter"] == model.n_iter_ and report["converged"] == model.converged_
    assert report["scores"] == {
        "log_likelihood_per_sample": model.score(blobs_2d),
        "log_likelihood": model.score(blobs_2d) * len(blobs_2d),
        "bic": model.bic(blobs_2d),
        "aic": model.aic(blobs_2d),
        "lower_bound": float(model.lower_bound_),
    }
    assert report["options"]["covariance_type"] == covariance_type
    assert report["data"] == {"source": str(csv), "n_samples": 300, "n_features": 2,
                              "dtype": "float64"}
    assert report["model_file"] == str(out_path)
    with np.load(out_path) as saved:
        assert_array_equal(saved["means"], model.means_)


def test_json_with_unconverged_fit_keeps_the_warning_on_stderr(capsys, tmp_path, blobs_2d):
    csv = write_csv(tmp_path / "data.csv", blobs_2d)
    status, out, err = run_cli(capsys, "fit", csv, "--max-iter", "1", "--tol", "0", "--json")
    assert status == 0
    assert json.loads(out)["converged"] is False
    assert err.startswith("fastem: warning: ") and err.count("\n") == 1


# ------------------------------------------------------------ predict

@pytest.fixture
def saved_model(capsys, tmp_path, blobs_2d):
    csv = write_csv(tmp_path / "data.csv", blobs_2d, header="x,y")
    model_path = tmp_path / "model.npz"
    status, _, err = run_cli(capsys, "fit", csv, "-k", "3", "--covariance-type", "diag",
                             "--out", model_path)
    assert status == 0, err
    return csv, model_path, fit_like_cli(blobs_2d, n_components=3, covariance_type="diag")


def test_predict_writes_the_labels_of_the_saved_model(capsys, saved_model, blobs_2d):
    csv, model_path, model = saved_model
    status, out, err = run_cli(capsys, "predict", "--model", model_path, csv)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "label"
    assert_array_equal(np.array(lines[1:], dtype=int), model.predict(blobs_2d))


def test_predict_proba_to_a_file(capsys, tmp_path, saved_model, blobs_2d):
    csv, model_path, model = saved_model
    out_path = tmp_path / "proba.csv"
    status, out, err = run_cli(capsys, "predict", "--model", model_path, csv, "--proba",
                               "--out", out_path)
    assert status == 0, err
    assert out == ""
    assert out_path.read_text().splitlines()[0] == "p0,p1,p2"
    proba = np.loadtxt(out_path, delimiter=",", skiprows=1)
    np.testing.assert_allclose(proba, model.predict_proba(blobs_2d), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_load_model_rebuilds_the_fitted_estimator(tmp_path, blobs_2d, covariance_type):
    model = fit_like_cli(blobs_2d, n_components=3, covariance_type=covariance_type)
    path = tmp_path / "m.npz"
    save_model(path, model)
    loaded = load_model(str(path))
    assert_array_equal(loaded.predict(blobs_2d), model.predict(blobs_2d))
    np.testing.assert_allclose(loaded.score_samples(blobs_2d), model.score_samples(blobs_2d),
                               rtol=1e-12)
    np.testing.assert_allclose(loaded.precisions_, model.precisions_, rtol=1e-12)
    assert loaded.converged_ == model.converged_ and loaded.n_iter_ == model.n_iter_


def _npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _model_arrays(**changes):
    """The arrays fastem fit --out wrote before model files had a header."""
    arrays = dict(weights=np.array([0.5, 0.5]), means=np.zeros((2, 2)),
                  covariances=np.ones((2, 2)), precisions_cholesky=np.ones((2, 2)),
                  covariance_type=np.str_("diag"))
    arrays.update(changes)
    return {key: value for key, value in arrays.items() if value is not None}


def _saved_and_edited(path, edit):
    """A model file fastem saved, its JSON header and arrays then changed by `edit`."""
    X = np.random.default_rng(0).normal(size=(60, 2))
    fastem.GaussianMixture(2, covariance_type="diag", random_state=0).fit(X).save(path)
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    header = json.loads(arrays.pop("header").tobytes())
    edit(header, arrays)
    return _npz(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)


PREDICT_ERRORS = {
    "model is a .npy": (lambda tmp: _save(tmp / "m.npy", np.ones(3)), "not a fastem model"),
    "model is text": (lambda tmp: _write(tmp / "m.npz", "1,2\n"), "not a fastem model"),
    "model file missing": (lambda tmp: tmp / "absent.npz", "No such file"),
    "model from before the format header": (
        lambda tmp: _npz(tmp / "m.npz", **_model_arrays()),
        "not a fastem model file (no header); it looks like a model saved by fastem fit --out"),
    "model lacks means": (
        lambda tmp: _saved_and_edited(tmp / "m.npz", lambda h, a: a.pop("means")),
        "do not match its header; missing: means"),
    "unknown covariance type": (
        lambda tmp: _saved_and_edited(
            tmp / "m.npz", lambda h, a: h["params"].update(covariance_type="round")),
        "invalid parameters: The 'covariance_type' parameter"),
    "covariances of the wrong shape": (
        lambda tmp: _saved_and_edited(
            tmp / "m.npz", lambda h, a: (a.update(covariances=np.ones((2, 2, 2))),
                                         h["arrays"].update(covariances=[2, 2, 2]))),
        "covariances has shape (2, 2, 2)"),
    "non-finite means": (
        lambda tmp: _saved_and_edited(tmp / "m.npz", lambda h, a: a["means"].fill(np.nan)),
        "means holds NaN or infinite values"),
}


@pytest.mark.parametrize("case", PREDICT_ERRORS)
def test_predict_refuses_what_is_not_a_model(capsys, tmp_path, blobs_2d, case):
    make_model, message = PREDICT_ERRORS[case]
    csv = write_csv(tmp_path / "data.csv", blobs_2d)
    status, out, err = run_cli(capsys, "predict", "--model", make_model(tmp_path), csv)
    assert status == 2
    assert out == ""
    assert err.startswith("fastem: error: ") and err.count("\n") == 1, err
    assert message in err


def test_predict_refuses_data_with_other_features(capsys, saved_model, tmp_path):
    _, model_path, _ = saved_model
    wide = _save(tmp_path / "wide.npy", np.ones((5, 3)))
    status, _, err = run_cli(capsys, "predict", "--model", model_path, wide)
    assert status == 2
    assert "wide.npy has 3 features, but the model in" in err and err.count("\n") == 1
    status, out, err = run_cli(capsys, "predict", "--model", model_path, wide, "--columns", "0,2")
    assert status == 0, err
    assert out.splitlines()[0] == "label" and len(out.splitlines()) == 6


# ------------------------------------------------------------ help, version, README

def _subparsers():
    from fastem.cli import _build_parser

    parser = _build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, action.choices


@pytest.mark.parametrize("command", [[], ["fit"], ["predict"], ["bench"]])
def test_every_help_has_examples_and_exits_0(capsys, command):
    status, out, err = run_cli(capsys, *command, "--help")
    assert status == 0 and err == ""
    assert "\nexamples:\n" in out
    example_lines = out.split("\nexamples:\n")[1].splitlines()
    assert any(line.strip().startswith(" ".join(["fastem", *command])) for line in example_lines)


def test_version(capsys):
    status, out, _ = run_cli(capsys, "--version")
    assert status == 0 and out.strip() == f"fastem {fastem.__version__}"


def _readme_section(title):
    with open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")) as fh:
        readme = fh.read()
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start:end]


def test_readme_command_line_summary_names_every_command_and_option():
    section = _readme_section("Command line")
    _, commands = _subparsers()
    for name, parser in commands.items():
        assert f"fastem {name}" in section, name
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert option in section, (name, option)


# ------------------------------------------------------------ missing values: fit --missing em, impute

def gappy_csv(path, X, gaps, header="a,b,c", empty=True):
    """X as CSV with the `gaps` written as empty fields (alternately "NaN" when not `empty`)."""
    lines = [header] if header else []
    for i, row in enumerate(X):
        fields = []
        for j, value in enumerate(row):
            if not gaps[i, j]:
                fields.append(repr(float(value)))
            else:
                fields.append("" if empty and (i + j) % 2 else ("NaN" if i % 3 else "nan"))
        lines.append(",".join(fields))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def gappy(make_blobs, rng):
    """(X, X with NaN, gaps): correlated 3-D blobs, 15 % of values missing, one kept per row."""
    X, _, _, _ = make_blobs(400, 3, 2)
    gaps = rng.random(X.shape) < 0.15
    gaps[gaps.all(axis=1), 1] = False
    X_gaps = np.where(gaps, np.nan, X)
    return X, X_gaps, gaps


def fit_missing_like_cli(X, n_components=2, covariance_type="full", seed=0):
    """The estimator ``fastem fit --missing em`` and ``fastem impute`` build for a data file."""
    return fastem.GaussianMixture(
        n_components=n_components, covariance_type=covariance_type, tol=1e-3, max_iter=100,
        n_init=1, random_state=seed, missing="em",
    ).fit(X)


def test_load_data_reads_empty_fields_and_nan_as_missing_only_when_asked(tmp_path):
    from fastem.cli import CLIError, load_data

    csv = _write(tmp_path / "gaps.csv", "x,y,z\n1,,3\nNaN,5, 6\n7,nan,\n")
    X = load_data(str(csv), missing=True)
    expected = np.array([[1, np.nan, 3], [np.nan, 5, 6], [7, np.nan, np.nan]])
    assert_array_equal(X, expected)        # assert_array_equal treats NaN as equal to NaN
    with pytest.raises(CLIError, match=r"line 2, column 2: cannot read '' as a number$"):
        load_data(str(csv))
    # A first row with gaps is a sample, not a header; a row of gaps too.
    assert_array_equal(load_data(str(_write(tmp_path / "first.csv", ",2\n3,4\n,\n")), missing=True),
                       [[np.nan, 2], [3, 4], [np.nan, np.nan]])
    tsv = _write(tmp_path / "gaps.tsv", "1\t\t3\n4\t5\t6\n")
    assert_array_equal(load_data(str(tsv), missing=True), [[1, np.nan, 3], [4, 5, 6]])
    npy = _save(tmp_path / "gaps.npy", expected)
    assert_array_equal(load_data(str(npy), missing=True), expected)


MISSING_ERROR_CASES = {
    "NaN without --missing em": (
        lambda tmp: ["fit", _write(tmp / "nan.csv", "1,2\n3,nan\n5,6\n")],
        "data row 2, column 2 is nan; fastem needs finite numbers (no NaN or infinity); with "
        "--missing em, NaN and empty fields are missing values"),
    "empty field without --missing em": (
        lambda tmp: ["fit", _write(tmp / "gap.csv", "1,2\n3,\n5,6\n")],
        "line 2, column 2: cannot read '' as a number; with --missing em"),
    "infinity with --missing em": (
        lambda tmp: ["fit", _write(tmp / "inf.csv", "1,2\n3,\n5,inf\n"), "--missing", "em"],
        "data row 3, column 2 is inf; fastem needs finite numbers, or NaN for a missing value"),
    "text with --missing em": (
        lambda tmp: ["fit", _write(tmp / "na.csv", "1,2\n3,NA\n5,6\n"), "--missing", "em"],
        "line 2, column 2: cannot read 'NA' as a number"),
    "bad --missing": (lambda tmp: ["fit", "--missing", "drop"], "argument --missing: invalid choice"),
    "NaN in select (which has no --missing)": (
        lambda tmp: ["select", _write(tmp / "nan.csv", "1,2\n3,nan\n5,6\n")],
        "column 2 is nan; fastem needs finite numbers (no NaN or infinity)\n"),
    "impute infinity": (
        lambda tmp: ["impute", _write(tmp / "inf.csv", "1,2\n3,\n5,-inf\n")],
        "data row 3, column 2 is -inf"),
    "impute fit options with --model": (
        lambda tmp: ["impute", "data.csv", "--model", "m.npz", "-k", "3", "--seed", "1"],
        "-k/--n-components, --seed set how a model is fitted: they do not apply with --model m.npz"),
    "impute --std onto --out": (
        lambda tmp: ["impute", "data.csv", "-o", tmp / "x.csv", "--std", tmp / "x.csv"],
        "--std and --out are both"),
    "impute --std into a missing directory": (
        lambda tmp: ["impute", "data.csv", "--std", tmp / "no" / "std.csv"], "does not exist"),
    "impute without FILE": (lambda tmp: ["impute"], "FILE"),
}


@pytest.mark.parametrize("case", MISSING_ERROR_CASES)
def test_missing_value_errors_exit_2_with_one_line(capsys, tmp_path, case):
    make_argv, message = MISSING_ERROR_CASES[case]
    status, out, err = run_cli(capsys, *make_argv(tmp_path))
    assert status == 2
    assert out == ""
    assert err.startswith("fastem: error: ") and err.count("\n") == 1, err
    assert message in err, err


@pytest.mark.parametrize("command", ["fit", "impute"])
def test_a_column_with_no_value_is_a_failed_fit(capsys, tmp_path, command):
    csv = _write(tmp_path / "empty_column.csv", "1,,3\n4,,6\n7,,9\n2,,1\n")
    argv = [command, csv] + (["--missing", "em"] if command == "fit" else [])
    status, out, err = run_cli(capsys, *argv)
    assert status == 1 and out == ""
    assert err.startswith("fastem: error: cannot fit: ") and err.count("\n") == 1, err
    assert "column 1" in err


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_missing_em_is_the_estimators_fit(capsys, tmp_path, gappy, covariance_type):
    _, X_gaps, gaps = gappy
    csv = gappy_csv(tmp_path / "gaps.csv", X_gaps, gaps)
    status, out, err = run_cli(capsys, "fit", csv, "--missing", "em", "--json",
                               "--covariance-type", covariance_type, "--out", tmp_path / "m.npz")
    assert status == 0, err
    report = json.loads(out)
    expected = fit_missing_like_cli(X_gaps, covariance_type=covariance_type)
    assert report["means"] == expected.means_.tolist()
    assert report["covariances"] == expected.covariances_.tolist()
    assert report["options"]["missing"] == "em"
    assert report["data"]["n_missing_values"] == int(gaps.sum())
    assert report["data"]["n_rows_with_missing"] == int(gaps.any(axis=1).sum())
    assert report["scores"]["log_likelihood_per_sample"] == expected.score(X_gaps)
    assert_array_equal(fastem.load(tmp_path / "m.npz").means_, expected.means_)
    # The text report says how much was missing.
    status, out, err = run_cli(capsys, "fit", csv, "--missing", "em",
                               "--covariance-type", covariance_type)
    assert status == 0, err
    share = f"{gaps.sum() / gaps.size:.1%}"
    assert (f"400 samples x 3 features (float64), {gaps.sum()} missing values ({share}) in "
            f"{gaps.any(axis=1).sum()} rows") in out
    assert "missing=em" in out
    assert summary_value(out, "BIC") == f"{expected.bic(X_gaps):.4f}"


def test_fit_missing_em_on_complete_data_is_the_ordinary_fit(capsys, tmp_path, blobs_2d):
    csv = write_csv(tmp_path / "data.csv", blobs_2d)
    _, plain, _ = run_cli(capsys, "fit", csv, "--json")
    status, with_em, err = run_cli(capsys, "fit", csv, "--json", "--missing", "em")
    assert status == 0, err
    plain, with_em = json.loads(plain), json.loads(with_em)
    for key in ("weights", "means", "covariances", "scores", "n_iter"):
        assert plain[key] == with_em[key], key


def _read_back(path):
    """A CSV the command line wrote: (header names or None, values)."""
    lines = path.read_text().splitlines()
    try:
        float(lines[0].split(",")[0])
        names = None
    except ValueError:
        names, lines = lines[0].split(","), lines[1:]
    return names, np.array([[float(v) for v in line.split(",")] for line in lines])


def test_impute_writes_the_estimators_fill(capsys, tmp_path, gappy):
    _, X_gaps, gaps = gappy
    csv = gappy_csv(tmp_path / "gaps.csv", X_gaps, gaps)
    out_path, std_path = tmp_path / "filled.csv", tmp_path / "std.csv"
    status, out, err = run_cli(capsys, "impute", csv, "-o", out_path, "--std", std_path, "-k", "2")
    assert status == 0, err
    expected = fit_missing_like_cli(X_gaps)
    filled, std = expected.impute(X_gaps, return_std=True)
    names, written = _read_back(out_path)
    assert names == ["a", "b", "c"]
    assert_array_equal(written, filled)                    # every value exact, observed ones too
    assert_array_equal(written[~gaps], X_gaps[~gaps])
    std_names, written_std = _read_back(std_path)
    assert std_names == ["a", "b", "c"]
    np.testing.assert_allclose(written_std, std, rtol=1e-9)
    assert np.all(written_std[~gaps] == 0) and np.all(written_std[gaps] > 0)
    assert f"{gaps.sum()} missing values" in out
    assert f"{expected.n_iter_} iterations" in out
    assert f"filled data saved to {out_path}" in out and f"standard deviations saved to {std_path}" in out


def test_impute_to_stdout_writes_only_the_data(capsys, tmp_path, gappy):
    _, X_gaps, gaps = gappy
    path = _save(tmp_path / "gaps.npy", X_gaps)
    status, out, err = run_cli(capsys, "impute", path, "--covariance-type", "tied", "--seed", "3")
    assert status == 0, err
    rows = np.array([[float(v) for v in line.split(",")] for line in out.splitlines()])  # no header
    assert_array_equal(rows, fit_missing_like_cli(X_gaps, covariance_type="tied", seed=3).impute(X_gaps))


def test_impute_with_a_saved_model(capsys, tmp_path, gappy):
    _, X_gaps, gaps = gappy
    csv = gappy_csv(tmp_path / "gaps.csv", X_gaps, gaps, empty=False)
    model_path = tmp_path / "model.npz"
    status, _, err = run_cli(capsys, "fit", csv, "--missing", "em", "-k", "3", "--out", model_path)
    assert status == 0, err
    new = X_gaps[::3]
    new_csv = gappy_csv(tmp_path / "new.csv", new, gaps[::3])
    out_path = tmp_path / "filled.csv"
    status, out, err = run_cli(capsys, "impute", new_csv, "--model", model_path, "-o", out_path,
                               "--threads", "1")
    assert status == 0, err
    assert f"loaded from {model_path}" in out
    assert_array_equal(_read_back(out_path)[1], fastem.load(model_path).impute(new))
    # A model fitted without missing="em" fills as well.
    plain_path = tmp_path / "plain.npz"
    complete = write_csv(tmp_path / "complete.csv", np.where(gaps, 0.0, X_gaps))
    assert run_cli(capsys, "fit", complete, "--out", plain_path)[0] == 0
    status, out, err = run_cli(capsys, "impute", new_csv, "--model", plain_path)
    assert status == 0, err
    assert_array_equal(_read_back_text(out), fastem.load(plain_path).impute(new))


def test_predict_missing_em_labels_rows_with_gaps(capsys, tmp_path, gappy):
    X, X_gaps, gaps = gappy
    csv = gappy_csv(tmp_path / "gaps.csv", X_gaps, gaps)
    complete = write_csv(tmp_path / "complete.csv", X)
    model_path = tmp_path / "model.npz"
    assert run_cli(capsys, "fit", complete, "-k", "3", "--out", model_path)[0] == 0  # missing="error"
    status, out, err = run_cli(capsys, "predict", "--model", model_path, csv, "--missing", "em",
                               "--proba")
    assert status == 0, err
    model = fastem.load(model_path).set_params(missing="em")
    written = np.array([[float(v) for v in line.split(",")] for line in out.splitlines()[1:]])
    np.testing.assert_allclose(written, model.predict_proba(X_gaps), rtol=1e-9, atol=1e-300)
    status, out, err = run_cli(capsys, "predict", "--model", model_path, csv)
    assert status == 2 and "with --missing em, NaN and empty fields are missing values" in err


def _read_back_text(text):
    return np.array([[float(v) for v in line.split(",")] for line in text.splitlines()[1:]])


def test_impute_refuses_data_with_other_features(capsys, tmp_path, gappy):
    _, X_gaps, gaps = gappy
    csv = gappy_csv(tmp_path / "gaps.csv", X_gaps, gaps)
    model_path = tmp_path / "model.npz"
    assert run_cli(capsys, "fit", csv, "--missing", "em", "--out", model_path)[0] == 0
    status, out, err = run_cli(capsys, "impute", csv, "--model", model_path, "--columns", "a,b")
    assert status == 2 and out == ""
    assert "has 2 features chosen by --columns, but the model in" in err and err.count("\n") == 1


def test_impute_columns_keep_their_names(capsys, tmp_path, gappy):
    _, X_gaps, gaps = gappy
    csv = gappy_csv(tmp_path / "gaps.csv", X_gaps, gaps)
    status, out, err = run_cli(capsys, "impute", csv, "--columns", "c,a")
    assert status == 0, err
    assert out.splitlines()[0] == "c,a"
    chosen = X_gaps[:, [2, 0]]
    assert_array_equal(_read_back_text(out), fit_missing_like_cli(chosen).impute(chosen))


def test_impute_help_has_examples(capsys):
    status, out, err = run_cli(capsys, "impute", "--help")
    assert status == 0 and err == ""
    examples = out.split("\nexamples:\n")[1].splitlines()
    assert any(line.strip().startswith("fastem impute") for line in examples)
    assert "--missing em" in run_cli(capsys, "fit", "--help")[1]


def test_load_data_with_missing_never_fails_otherwise(tmp_path):
    # Random CSV-like text: a float array without infinity (NaN allowed), or CLIError.
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from fastem.cli import CLIError, load_data

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.text(alphabet="01.-e,\n naNifx#\t", max_size=60))
    def check(text):
        path = tmp_path / "fuzz.csv"
        path.write_text(text)
        try:
            X = load_data(str(path), missing=True)
        except CLIError as exc:
            assert str(exc)
        else:
            assert X.ndim == 2 and X.size > 0 and X.dtype == np.float64
            assert not np.isinf(X).any()

    check()
