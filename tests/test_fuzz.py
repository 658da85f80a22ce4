"""Fuzzing, bounded in time: the command line's file parsing and the estimator's input checks.

Hypothesis writes random bytes, CSV-like text and ``.npy`` files and hands them to
``fastem.cli.load_data`` (which must return a finite 2-D float array or raise
``CLIError``, never another exception), random files to ``fastem.cli.load_model``
(a fitted model or ``CLIError``), and arrays of odd dtypes, shapes and values to
``GaussianMixture.fit`` / ``predict`` (a finite model or ``ValueError``/``TypeError``).

The default run tries a few dozen inputs per target (the "default" hypothesis
profile of ``conftest.py``). The long run is the ``fuzz_long`` marker with the
"long" profile:

    FASTEM_HYPOTHESIS_PROFILE=long python -m pytest -m fuzz_long tests/test_fuzz.py
"""
import io
import os
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastem
from fastem.cli import CLIError, load_data, load_model
from fastem.exceptions import ConvergenceWarning

fuzz_settings = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)

# ------------------------------------------------------------------ inputs

# Tokens a CSV line is made of, good and bad: numbers of every spelling, text,
# the non-finite words loadtxt accepts, separators, comments, quotes, blanks.
_FIELDS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "NaN", "1e999", "-1e-999", "0x10",
                     "1_000", "1,5", "+", "-", ".", "e5", "True", "x", "height", "\"1\"",
                     "#", "\u00e9", "\x00", "1\r", "\t"]),
    st.text(max_size=6),
)
_LINES = st.lists(_FIELDS, min_size=0, max_size=5).flatmap(
    lambda fields: st.sampled_from([",", "\t", ";", " "]).map(lambda sep: sep.join(fields)))
_CSV_TEXT = st.lists(_LINES, max_size=8).map("\n".join)

_SUFFIXES = st.sampled_from([".csv", ".tsv", ".txt", ".npy", ""])


def _write(directory, suffix, payload):
    fd, path = tempfile.mkstemp(suffix=suffix, dir=directory)
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
    return path


@st.composite
def _npy_bytes(draw):
    """A real .npy file (possibly cut short or with bytes flipped): what np.save writes."""
    array = draw(hnp.arrays(
        dtype=st.sampled_from(["<f8", "<f4", ">f8", "<i4", "|b1", "<c16", "<U3", "<f2", "|u1",
                               "<m8[s]"]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    ))
    buffer = io.BytesIO()
    np.save(buffer, array)
    raw = bytearray(buffer.getvalue())
    mutation = draw(st.sampled_from(["none", "truncate", "flip"]))
    if mutation == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif mutation == "flip" and raw:
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


_FILES = st.one_of(
    st.tuples(_SUFFIXES, st.binary(max_size=300)),
    st.tuples(st.sampled_from([".csv", ".tsv", ".txt"]), _CSV_TEXT.map(lambda t: t.encode())),
    st.tuples(st.just(".npy"), _npy_bytes()),
)


def _check_loaded(X, mmap=False):
    assert isinstance(X, np.ndarray)
    assert X.ndim == 2 and X.shape[0] >= 1 and X.shape[1] >= 1
    if mmap:  # mapped as stored (any byte order, integers too); the fit converts blocks
        assert X.dtype.kind in "biuf"
    else:
        assert X.dtype in (np.float32, np.float64)
    assert np.all(np.isfinite(X))


def _fuzz_load_data(tmp_path, file, options):
    suffix, payload = file
    path = _write(tmp_path, suffix, payload)
    try:
        X = load_data(path, **options)
    except CLIError as exc:
        assert str(exc)  # a message for the user, never empty
    else:
        _check_loaded(X, options.get("mmap", False))
    finally:
        os.remove(path)


_LOAD_OPTIONS = st.fixed_dictionaries({}, optional={
    "delimiter": st.sampled_from([",", "\t", ";", " ", "|"]),
    "columns": st.sampled_from(["0", "1,0", "0,0", "x", "height,weight", "", " , ", "99"]),
})


@fuzz_settings
@given(file=_FILES, options=_LOAD_OPTIONS)
def test_load_data_returns_finite_rows_or_cli_error(tmp_path, file, options):
    _fuzz_load_data(tmp_path, file, options)


@fuzz_settings
@given(file=st.tuples(st.just(".npy"), _npy_bytes()))
def test_load_data_mmap_returns_finite_rows_or_cli_error(tmp_path, file):
    _fuzz_load_data(tmp_path, file, {"mmap": True})


# R4 replaces the model file format: only load_model's public contract is
# fuzzed here, on garbage and on damaged copies of a real model file.
@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    X = np.random.default_rng(0).normal(size=(60, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = fastem.GaussianMixture(2, random_state=0, max_iter=5).fit(X)
    path = tmp_path_factory.mktemp("model") / "model.npz"
    fastem.cli.save_model(str(path), model)
    return path.read_bytes()


@fuzz_settings
@given(data=st.data())
def test_load_model_returns_a_model_or_cli_error(tmp_path, model_bytes, data):
    raw = bytearray(model_bytes)
    kind = data.draw(st.sampled_from(["garbage", "truncate", "flip"]))
    if kind == "garbage":
        raw = bytearray(data.draw(st.binary(max_size=400)))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = _write(tmp_path, ".npz", bytes(raw))
    try:
        model = load_model(path)
    except CLIError as exc:
        assert str(exc)
    else:
        # A model that loads answers with finite numbers.
        X = np.zeros((3, model.n_features_in_))
        assert np.all(np.isfinite(model.predict_proba(X)))
    finally:
        os.remove(path)


# ------------------------------------------------------- estimator checks

_ODD_DTYPES = st.sampled_from([
    "<f8", "<f4", ">f8", "<f2", "<i8", "|i1", "<u4", "|b1", "<c16", "<U4", "|S3", "O", "<M8[D]",
])
_ODD_VALUES = st.sampled_from([0.0, -0.0, 1.0, 1e-310, 1e-150, 1e150, 3e38, -3e38, 1e308,
                               np.nan, np.inf, -np.inf])


@st.composite
def _odd_arrays(draw):
    dtype = np.dtype(draw(_ODD_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12))
    if dtype.kind == "f":
        def cast(value):  # 1e150 in float32 is inf: a value the checks must meet too
            with np.errstate(over="ignore"):
                return np.asarray(value).astype(dtype).item()
        array = draw(hnp.arrays(dtype, shape, elements=st.one_of(
            _ODD_VALUES, st.floats(-1e3, 1e3)).map(cast)))
    elif dtype.kind == "O":
        array = np.empty(shape, dtype=object)
        flat = array.reshape(-1)
        for i in range(flat.size):
            flat[i] = draw(st.one_of(st.floats(), st.text(max_size=2), st.none(), st.integers()))
    else:
        array = draw(hnp.arrays(dtype, shape))
    layout = draw(st.sampled_from(["c", "fortran", "strided", "readonly"]))
    if layout == "fortran":
        array = np.asfortranarray(array)
    elif layout == "strided" and array.ndim >= 1:
        array = array[::-1]
    elif layout == "readonly":
        array.flags.writeable = False
    return array


def _fitted_finite(model):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(model, name))), name


@fuzz_settings
@given(X=_odd_arrays(), k=st.integers(1, 3),
       covariance_type=st.sampled_from(["full", "tied", "diag", "spherical"]),
       weights=st.sampled_from([None, "ones", "zeros", "negative", "nan", "short"]))
def test_fit_gives_a_finite_model_or_a_clear_error(X, k, covariance_type, weights):
    before = X.copy()
    sample_weight = None
    if weights is not None and X.ndim >= 1:
        n = X.shape[0]
        sample_weight = {
            "ones": np.ones(n), "zeros": np.zeros(n), "negative": -np.ones(n),
            "nan": np.full(n, np.nan), "short": np.ones(n + 1),
        }[weights]
    model = fastem.GaussianMixture(k, covariance_type=covariance_type, max_iter=5,
                                   random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            model.fit(X, sample_weight=sample_weight)
        except (ValueError, TypeError) as exc:
            assert str(exc)
        else:
            _fitted_finite(model)
            proba = model.predict_proba(X)
            assert np.all(np.isfinite(proba))
    # The input is never written to (bytes compared: NaN and NaT are not equal to themselves).
    assert before.dtype == X.dtype and before.shape == X.shape
    if X.dtype.kind == "O":
        assert all(a is b for a, b in zip(before.ravel(), X.ravel()))
    else:
        assert before.tobytes() == X.tobytes()


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(1).normal(size=(50, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fastem.GaussianMixture(2, random_state=0, max_iter=5).fit(X)


@fuzz_settings
@given(X=_odd_arrays(), method=st.sampled_from(["predict", "predict_proba", "score_samples",
                                                 "score"]))
def test_inference_gives_finite_values_or_a_clear_error(fitted, X, method):
    try:
        out = getattr(fitted, method)(X)
    except (ValueError, TypeError) as exc:
        assert str(exc)
    else:
        assert np.all(np.isfinite(out))


# --------------------------------------------------------------- long run

@pytest.mark.fuzz_long
@settings(deadline=None, max_examples=5000,
          suppress_health_check=list(HealthCheck))
@given(file=_FILES, options=_LOAD_OPTIONS)
def test_load_data_long(tmp_path, file, options):
    _fuzz_load_data(tmp_path, file, options)


# ------------------------------------------- regressions the fuzzing found

def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("cut", [30, 200, -20])
def test_truncated_model_file_is_a_cli_error_and_is_closed(tmp_path, model_bytes, cut):
    # Was zipfile.BadZipFile out of load_model (a traceback from `fastem predict`),
    # with the file left open.
    path = tmp_path / "cut.npz"
    path.write_bytes(model_bytes[:cut])
    before = _open_fds()
    with pytest.raises(CLIError, match="not a fastem model"):
        load_model(str(path))
    assert _open_fds() == before


def test_model_file_with_a_bad_checksum_is_a_cli_error(tmp_path, model_bytes):
    raw = bytearray(model_bytes)
    # The first member's data starts after its 30-byte local header and name.
    name_length = int.from_bytes(raw[26:28], "little")
    extra_length = int.from_bytes(raw[28:30], "little")
    raw[30 + name_length + extra_length + 100] ^= 0xFF
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(raw))
    with pytest.raises(CLIError, match="not a fastem model"):
        load_model(str(path))


def test_npy_with_a_mangled_header_is_a_cli_error(tmp_path):
    # Was tokenize.TokenError out of load_data.
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    raw = bytearray(buffer.getvalue())
    raw[raw.index(b"}")] = 0  # the header's closing brace becomes a NUL byte
    path = tmp_path / "mangled.npy"
    path.write_bytes(bytes(raw))
    for mmap in (False, True):
        with pytest.raises(CLIError, match="cannot read .* as a .npy file"):
            load_data(str(path), mmap=mmap)


@pytest.mark.parametrize("shape", [(10**11,), (10**9, 3), (2**62, 4)])
def test_npy_header_claiming_more_than_the_file_is_a_cli_error(tmp_path, shape):
    # Was MemoryError (an attempt to allocate what the header claims, 745 GiB).
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    path = tmp_path / "huge.npy"
    path.write_bytes(buffer.getvalue() + bytes(64))
    for mmap in (False, True):
        with pytest.raises(CLIError, match="cannot read .* as a .npy file"):
            load_data(str(path), mmap=mmap)


def test_npy_read_into_memory_is_a_writable_copy(tmp_path):
    # load_data maps the file before reading it: the result must still be an
    # ordinary array in memory, not a view of the mapped file.
    path = tmp_path / "x.npy"
    np.save(path, np.arange(6.0).reshape(3, 2))
    X = load_data(str(path))
    assert type(X) is np.ndarray and X.flags.writeable and X.flags.owndata
    assert np.array_equal(X, np.arange(6.0).reshape(3, 2))
