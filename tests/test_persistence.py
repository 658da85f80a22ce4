"""Saving and loading models: est.save / fastem.load, pickles, and hostile model files.

A model file is fastem._persistence's format (an .npz of a JSON header and the
fitted arrays).  What is checked here: a saved model comes back bit for bit;
a file that is not one fastem wrote (truncated, random bytes, forged headers,
object arrays, NaN, non-positive-definite covariances, a newer format) is
refused with a ValueError that says why, never unpickled, never loaded as a
model that later returns NaN; pickles carry a state version.
"""
import io
import json
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastem
from fastem import GaussianMixture, NotFittedError
from fastem import _base, _persistence
from fastem.cli import main

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _blobs(rng, n=300, d=3, dtype=np.float64):
    centres = np.array([[0.0] * d, [6.0] * d, [-6.0] + [3.0] * (d - 1)])
    X = np.concatenate([rng.normal(size=(n // 3, d)) + c for c in centres])
    return X.astype(dtype)


def _fit(rng, covariance_type="full", dtype=np.float64, **params):
    X = _blobs(rng, dtype=dtype)
    params.setdefault("random_state", 0)
    return GaussianMixture(3, covariance_type=covariance_type, **params).fit(X), X


FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
          "n_features_in_", "converged_", "n_iter_", "lower_bound_"]


def _assert_same_model(loaded, original, X):
    assert type(loaded) is type(original)
    for name in FITTED:
        a, b = getattr(loaded, name), getattr(original, name)
        assert_array_equal(a, b, err_msg=name)
        assert np.asarray(a).dtype == np.asarray(b).dtype, name
    assert_array_equal(loaded.lower_bounds_, original.lower_bounds_)
    # Bit for bit: the same arrays reach the same kernels.
    assert_array_equal(loaded.predict(X), original.predict(X))
    assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    assert_array_equal(loaded.score_samples(X), original.score_samples(X))
    assert loaded.score(X) == original.score(X)
    assert loaded.bic(X) == original.bic(X)


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_saved_model_loads_bit_for_bit(tmp_path, rng, covariance_type, dtype):
    gm, X = _fit(rng, covariance_type, dtype, tol=1e-4, reg_covar=1e-5, n_threads=1)
    path = tmp_path / "model.npz"
    gm.save(path)
    loaded = fastem.load(path)
    _assert_same_model(loaded, gm, X)
    assert loaded.get_params() == gm.get_params()
    assert_array_equal(loaded.sample(50)[0], gm.sample(50)[0])


def test_save_keeps_the_name_and_reads_from_a_file_object(tmp_path, rng):
    gm, X = _fit(rng, "diag")
    gm.save(str(tmp_path / "model"))          # no ".npz" appended
    assert sorted(os.listdir(tmp_path)) == ["model"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o666 & ~umask   # as open() makes it
    buffer = io.BytesIO()
    gm.save(buffer)
    buffer.seek(0)
    _assert_same_model(fastem.load(buffer), gm, X)
    assert (tmp_path / "model").read_bytes() == buffer.getvalue()


def test_parameters_that_are_not_plain_json_load_as_none(tmp_path, rng):
    X = _blobs(rng)
    gm = GaussianMixture(3, weights_init=np.full(3, 1 / 3), means_init=X[[0, 100, 200]],
                         random_state=np.random.RandomState(0), callback=lambda info: False,
                         tol=1e-4).fit(X)
    gm.save(tmp_path / "m.npz")
    loaded = fastem.load(tmp_path / "m.npz")
    assert loaded.weights_init is None and loaded.means_init is None
    assert loaded.random_state is None and loaded.callback is None
    assert loaded.tol == 1e-4
    assert_array_equal(loaded.predict_proba(X), gm.predict_proba(X))


def test_feature_names_and_max_iter_0_survive(tmp_path, rng):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_blobs(rng), columns=["a", "b", "c"])
    with pytest.warns(fastem.ConvergenceWarning):
        pass_free = GaussianMixture(3, max_iter=1, random_state=0).fit(X)
    zero = GaussianMixture(3, max_iter=0, random_state=0).fit(X)
    for gm in (pass_free, zero):
        gm.save(tmp_path / "m.npz")
        loaded = fastem.load(tmp_path / "m.npz")
        assert_array_equal(loaded.feature_names_in_, gm.feature_names_in_)
        assert loaded.feature_names_in_.dtype == object
        _assert_same_model(loaded, gm, X)
    assert zero.lower_bound_ == -np.inf and fastem.load(tmp_path / "m.npz").lower_bound_ == -np.inf


def test_partial_fit_after_load_continues_as_after_fit(tmp_path, rng):
    gm, X = _fit(rng, "full")
    gm.save(tmp_path / "m.npz")
    loaded = fastem.load(tmp_path / "m.npz")
    chunk = X[::7]
    gm.partial_fit(chunk)
    loaded.partial_fit(chunk)
    _assert_same_model(loaded, gm, X)


def test_an_unfitted_estimator_is_not_saved(tmp_path):
    with pytest.raises(NotFittedError):
        GaussianMixture().save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_a_failed_save_keeps_the_previous_file(tmp_path, rng, monkeypatch):
    gm, _ = _fit(rng, "diag")
    path = tmp_path / "m.npz"
    gm.save(path)
    before = path.read_bytes()

    def savez_then_fail(fh, **members):
        fh.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_persistence.np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="No space"):
        gm.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]      # no partial file left behind


def test_the_header_names_format_version_class_and_fastem(tmp_path, rng):
    gm, _ = _fit(rng, "tied")
    gm.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
        assert archive["header"].dtype == np.uint8
    assert header["format"] == "fastem-model" and header["format_version"] == 1
    assert header["estimator"] == "GaussianMixture"
    assert header["fastem_version"] == fastem.__version__
    assert header["params"]["covariance_type"] == "tied"
    assert header["arrays"]["covariances"] == [3, 3]


# ---------------------------------------------------------------- hostile files

def _members(path):
    """The header (a dict) and the arrays of a model file."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return json.loads(arrays.pop("header").tobytes()), arrays


def _write_members(path, header, arrays):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as fh:
        np.savez(fh, header=np.frombuffer(text, dtype=np.uint8), **arrays)
    return path


def _edited(edit):
    """A case: the good file, its header and arrays changed by `edit(header, arrays)`."""
    def make(good, out):
        header, arrays = _members(good)
        edit(header, arrays)
        return _write_members(out, header, arrays)
    return make


def _set(path, value):
    """An edit that sets header[path[0]][path[1]]... (or deletes it when value is _DELETE)."""
    def edit(header, arrays):
        node = header
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return _edited(edit)


def _array(key, change):
    def edit(header, arrays):
        arrays[key] = change(arrays[key].copy())
        if key in header["arrays"]:
            header["arrays"][key] = list(arrays[key].shape)
    return _edited(edit)


_DELETE = object()


def _raw(data):
    def make(good, out):
        out.write_bytes(data(good.read_bytes()) if callable(data) else data)
        return out
    return make


def _npz(**arrays):
    def make(good, out):
        with open(out, "wb") as fh:
            np.savez(fh, **arrays)
        return out
    return make


def _npy(array):
    def make(good, out):
        with open(out, "wb") as fh:
            np.save(fh, array)
        return out
    return make


def _zip_of(**members):
    def make(good, out):
        with zipfile.ZipFile(out, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return out
    return make


def _npy_header_forged(shape):
    """A means member whose .npy header claims `shape` but holds a few bytes."""
    def make(good, out):
        header, arrays = _members(good)
        header["arrays"]["means"] = list(shape)
        _write_members(out, header, arrays)
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buffer, {"descr": "<f8", "fortran_order": False, "shape": tuple(shape)})
        forged = buffer.getvalue() + b"\0" * 48
        with zipfile.ZipFile(out) as src:
            kept = {info.filename: src.read(info) for info in src.infolist()}
        kept["means.npy"] = forged
        with zipfile.ZipFile(out, "w") as dst:
            for name, data in kept.items():
                dst.writestr(name, data)
        return out
    return make


class _Trap:
    """Unpickling it would create a file: proof that no pickle ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _object_member(key):
    def make(good, out):
        header, arrays = _members(good)
        trap = np.empty(1, dtype=object)
        trap[0] = _Trap(out.parent / "PWNED")
        arrays[key] = trap
        text = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        members = {"header": trap if key == "header" else text,
                   **{k: v for k, v in arrays.items() if k != "header"}}
        with open(out, "wb") as fh:
            np.savez(fh, **members)   # savez pickles object arrays
        return out
    return make


def _not_pd(arrays):
    cov = arrays["covariances"].copy()
    cov[0] = np.diag([1.0, -1.0, 1.0])
    return cov


HOSTILE = {
    # files that are not model files at all
    "empty file": (_raw(b""), "not a fastem model file"),
    "random bytes": (_raw(bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))),
                     "not a fastem model file"),
    "text": (_raw(b"weights,means\n1,2\n"), "not a fastem model file"),
    "zip header then garbage": (_raw(b"PK\x03\x04" + b"\xff" * 200), "not a fastem model file"),
    "a .npy array": (_npy(np.ones(3)), "single .npy array"),
    "a zip that is not an npz": (_zip_of(**{"readme.txt": b"hello"}), "no header"),
    "a zip with a fake npy": (_zip_of(**{"header.npy": b"\x93NUMPY garbage"}), ".npy format version"),
    "an npz of other arrays": (_npz(x=np.ones(3)), "no header"),
    "the format before headers": (_npz(weights=np.ones(2) / 2, means=np.zeros((2, 2)),
                                       covariances=np.ones((2, 2))), "fit and save it again"),
    # headers
    "header not JSON": (lambda good, out: _write_members(out, b"\xff\xfe{", _members(good)[1]),
                        "header is not JSON"),
    "header is a list": (lambda good, out: _write_members(out, b"[1, 2]", _members(good)[1]),
                         "does not name"),
    "header deeply nested": (lambda good, out: _write_members(out, b"[" * 100000, {}),
                             "header is not JSON"),
    "header with NaN": (lambda good, out: _write_members(
        out, json.dumps(_members(good)[0]).replace('"tol": 0.0001', '"tol": NaN').encode(),
        _members(good)[1]), "header is not JSON"),
    "header of floats": (_npz(header=np.ones(3)), "holds float64, not uint8"),
    "header 2-D": (_npz(header=np.ones((2, 2), np.uint8)), "has shape (2, 2)"),
    "another format": (_set(["format"], "numpy-model"), "does not name"),
    "newer format version": (_set(["format_version"], 2), "Upgrade fastem"),
    "format version 0": (_set(["format_version"], 0), "format_version 0"),
    "format version a string": (_set(["format_version"], "1"), "format_version '1'"),
    "unknown estimator": (_set(["estimator"], "os.system"), "cannot load"),
    "missing header field": (_set(["attributes"], _DELETE), "header's fields"),
    "extra header field": (_set(["comment"], "hi"), "header's fields"),
    "unknown dtype": (_set(["dtype"], "object"), "not float32 or float64"),
    "params not an object": (_set(["params"], [1]), "params is not a JSON object"),
    "huge claimed shape": (_set(["arrays", "means"], [10**9, 10**9]), "not a model's"),
    "negative claimed shape": (_set(["arrays", "means"], [-3, 3]), "not a model's"),
    "shape of 5 dimensions": (_set(["arrays", "means"], [1, 1, 1, 1, 1]), "not a model's"),
    "npy header claims a huge array": (_npy_header_forged((10**7, 3)), "truncated"),
    "npy header claims more than the header": (_npy_header_forged((10**12, 3)), "not a model's"),
    # params and attributes
    "unknown parameter": (_set(["params", "exec"], "rm -rf /"), "unknown GaussianMixture parameters"),
    "n_components disagrees": (_set(["params", "n_components"], 4), "weights has shape (3,)"),
    "n_components a string": (_set(["params", "n_components"], "3"), "invalid parameters"),
    "unknown covariance type": (_set(["params", "covariance_type"], "round"), "invalid parameters"),
    "negative tol": (_set(["params", "tol"], -1.0), "invalid parameters"),
    "callback a name": (_set(["params", "callback"], "os.system"), "invalid parameters"),
    "n_components a float": (_set(["params", "n_components"], 3.0), "invalid parameters"),
    "n_features disagrees": (_set(["attributes", "n_features_in"], 2), "means has shape (3, 3)"),
    "n_features zero": (_set(["attributes", "n_features_in"], 0), "n_features_in is 0"),
    "converged a string": (_set(["attributes", "converged"], "yes"), "not a bool"),
    "n_iter a float": (_set(["attributes", "n_iter"], 2.5), "not a int"),
    "n_iter negative": (_set(["attributes", "n_iter"], -1), "n_iter is -1"),
    "missing attribute": (_set(["attributes", "n_iter"], _DELETE), "attributes"),
    "feature names wrong count": (_set(["attributes", "feature_names_in"], ["a"]), "3 strings"),
    "feature names not strings": (_set(["attributes", "feature_names_in"], [1, 2, 3]), "3 strings"),
    "negative seen weight": (_set(["attributes", "seen_weight"], -1.0), "seen_weight"),
    # arrays
    "missing array": (_edited(lambda h, a: a.pop("covariances")), "missing: covariances"),
    "array not in header": (_edited(lambda h, a: a.update(extra=np.ones(2))),
                            "not in the header: extra"),
    "array missing from both": (_edited(lambda h, a: (a.pop("precisions"), h["arrays"].pop("precisions"))),
                                "arrays"),
    "wrong array shape vs header": (_edited(lambda h, a: a.update(means=np.zeros((3, 2)))),
                                    "has shape (3, 2), but the header says (3, 3)"),
    "means of the wrong shape": (_array("means", lambda m: m[:, :2]), "means has shape (3, 2)"),
    "covariances of the wrong shape": (_array("covariances", lambda c: c[:, 0]), "covariances has shape"),
    "integer weights": (_array("weights", lambda w: np.array([1, 0, 0])), "holds int64, not float64"),
    "float16 means": (_array("means", lambda m: m.astype(np.float16)), "holds float16"),
    "complex means": (_array("means", lambda m: m.astype(np.complex128)), "holds complex128"),
    "string means": (_array("means", lambda m: m.astype(str)), "not float64"),
    "object weights (a pickle)": (_object_member("weights"), "not float64"),
    "object header (a pickle)": (_object_member("header"), "not uint8"),
    "NaN means": (_array("means", lambda m: m * np.nan), "means holds NaN"),
    "inf covariances": (_array("covariances", lambda c: c * np.inf), "covariances holds NaN or inf"),
    "NaN precision factor": (_array("precisions_cholesky", lambda p: p * np.nan), "precisions_cholesky holds"),
    "negative weights": (_array("weights", lambda w: np.array([1.5, -0.25, -0.25])), "non-negative"),
    "weights not summing to 1": (_array("weights", lambda w: w * 2), "sum to 1"),
    "all-zero weights": (_array("weights", lambda w: w * 0), "sum to 1"),
    "covariance not positive definite": (_edited(lambda h, a: a.update(covariances=_not_pd(a))),
                                         "not positive definite"),
    "covariance not symmetric": (_array("covariances", lambda c: c + np.triu(np.ones(3), 1)),
                                 "not symmetric"),
    "precision factor of another covariance": (_array("precisions_cholesky", lambda p: p * 2),
                                               "not the inverse factor"),
    "precision factor not triangular": (_array("precisions_cholesky", lambda p: p + 0.1),
                                        "not a triangular factor"),
    "precision factor negative diagonal": (_array("precisions_cholesky", lambda p: -p),
                                           "positive diagonal"),
    "precision factor huge": (_array("precisions_cholesky", lambda p: p * 1e300), "not the inverse"),
    "precisions inconsistent": (_array("precisions", lambda p: p + 1.0), "precisions is not the product"),
    "lower bounds NaN": (_array("lower_bounds", lambda b: b * np.nan), "lower_bounds"),
    "lower bounds 2-D": (_array("lower_bounds", lambda b: b[:, None]), "lower_bounds"),
}


@pytest.fixture
def good_file(tmp_path, rng):
    gm, X = _fit(rng, "full", tol=1e-4)
    path = tmp_path / "good.npz"
    gm.save(path)
    return path, X


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_refused_with_a_clear_message(tmp_path, good_file, case):
    make, message = HOSTILE[case]
    path = make(good_file[0], tmp_path / "hostile.npz")
    with pytest.raises(ValueError) as info:
        fastem.load(path)
    assert message in str(info.value), str(info.value)
    assert str(path) in str(info.value) or "not a fastem" in str(info.value)
    assert not (tmp_path / "PWNED").exists()      # nothing was unpickled


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_non_positive_variances_are_refused(tmp_path, rng, covariance_type):
    gm, _ = _fit(rng, covariance_type)
    good = tmp_path / "good.npz"
    gm.save(good)
    for key in ("covariances", "precisions_cholesky"):
        path = _array(key, lambda v: -v)(good, tmp_path / f"{key}.npz")
        with pytest.raises(ValueError, match="must be positive"):
            fastem.load(path)


def test_newer_version_message_names_both_versions(tmp_path, good_file):
    path = _set(["format_version"], 7)(good_file[0], tmp_path / "new.npz")
    with pytest.raises(ValueError) as info:
        fastem.load(path)
    message = str(info.value)
    assert "format version 7" in message and f"({fastem.__version__})" in message
    assert "reads versions up to 1" in message


def test_every_truncation_is_refused(tmp_path, good_file):
    data = good_file[0].read_bytes()
    cuts = sorted(set(np.linspace(0, len(data) - 1, 60).astype(int)))
    for cut in cuts:
        path = tmp_path / "cut.npz"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            fastem.load(path)


def test_flipped_bytes_never_give_a_model_that_returns_nan(tmp_path, good_file):
    """Random corruption: refused, or (bytes zip ignores) a model that still scores finitely."""
    data, X = good_file[0].read_bytes(), good_file[1]
    reference = fastem.load(good_file[0]).predict_proba(X)
    rng = np.random.default_rng(5)
    outcomes = {"refused": 0, "loaded": 0}
    for _ in range(150):
        corrupt = bytearray(data)
        for position in rng.integers(0, len(data), size=rng.integers(1, 4)):
            corrupt[position] = rng.integers(0, 256)
        path = tmp_path / "flipped.npz"
        path.write_bytes(bytes(corrupt))
        try:
            model = fastem.load(path)
        except ValueError:
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        proba = model.predict_proba(X)
        assert np.all(np.isfinite(proba)) and np.all(np.isfinite(model.score_samples(X)))
        assert proba.shape == reference.shape
    assert outcomes["refused"] > 0


def test_a_missing_file_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastem.load(tmp_path / "absent.npz")


# ---------------------------------------------------------------- pickles

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pickle_round_trips(rng, covariance_type):
    gm, X = _fit(rng, covariance_type)
    state = gm.__getstate__()
    assert state["_fastem_state"] == (_base.PICKLE_STATE_VERSION, fastem.__version__)
    assert "_fastem_state" not in gm.__dict__
    back = pickle.loads(pickle.dumps(gm))
    _assert_same_model(back, gm, X)
    assert "_fastem_state" not in back.__dict__
    unfitted = pickle.loads(pickle.dumps(GaussianMixture(4, tol=0.5)))
    assert unfitted.get_params()["tol"] == 0.5 and not unfitted.__sklearn_is_fitted__()


def test_a_pickle_from_a_newer_state_version_is_refused(rng, monkeypatch):
    gm, _ = _fit(rng, "diag")
    monkeypatch.setattr(_base, "PICKLE_STATE_VERSION", _base.PICKLE_STATE_VERSION + 1)
    monkeypatch.setattr(fastem, "__version__", "9.0.0")
    data = pickle.dumps(gm)
    monkeypatch.undo()
    with pytest.raises(ValueError) as info:
        pickle.loads(data)
    message = str(info.value)
    assert "pickled by fastem 9.0.0 with state version 2" in message
    assert f"fastem {fastem.__version__} reads state versions up to 1" in message
    assert "fastem.load" in message


def test_a_pickle_from_before_state_versions_loads(rng):
    """fastem 0.1.0 pickled the plain __dict__; it loads as state version 1."""
    gm, X = _fit(rng, "tied")
    old_state = dict(gm.__dict__)
    restored = GaussianMixture.__new__(GaussianMixture)
    restored.__setstate__(old_state)
    _assert_same_model(restored, gm, X)


# ---------------------------------------------------------------- the command line

def test_cli_fit_out_writes_the_format_and_predict_reads_it(capsys, tmp_path, rng):
    X = _blobs(rng)
    csv = tmp_path / "data.csv"
    np.savetxt(csv, X, fmt="%.17g", delimiter=",")
    model_path = tmp_path / "model.npz"
    assert main(["fit", str(csv), "-k", "3", "--seed", "0", "--out", str(model_path)]) == 0
    capsys.readouterr()
    header, _ = _members(model_path)
    assert header["format"] == "fastem-model" and header["estimator"] == "GaussianMixture"
    model = fastem.load(model_path)
    assert main(["predict", "--model", str(model_path), str(csv)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "label"
    assert_array_equal(np.array(out[1:], dtype=int), model.predict(X))


def test_cli_predict_refuses_a_hostile_model_in_one_line(capsys, tmp_path, good_file):
    csv = tmp_path / "data.csv"
    np.savetxt(csv, good_file[1], delimiter=",")
    path = _set(["format_version"], 3)(good_file[0], tmp_path / "new.npz")
    assert main(["predict", "--model", str(path), str(csv)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Upgrade fastem" in err


def test_readme_example_runs(monkeypatch, tmp_path):
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    blocks = [block for block in blocks if "fastem.load(" in block]
    assert len(blocks) == 1
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert len(os.listdir(tmp_path)) == 1
