"""Saving fitted estimators to a portable file and loading them back safely.

A model file is an ``.npz`` archive (NumPy's zip of ``.npy`` members) that
needs no pickle to read:

- ``header``: a uint8 array of UTF-8 JSON, the file's table of contents::

    {"format": "fastem-model", "format_version": 1, "fastem_version": "0.1.0",
     "estimator": "GaussianMixture", "params": {...}, "attributes": {...},
     "dtype": "float64", "arrays": {"weights": [3], "means": [3, 2], ...}}

  ``params`` are the constructor parameters that are plain JSON (numbers,
  strings, booleans, None); ``attributes`` the fitted scalars; ``arrays``
  the shape of every array member;
- one float32 or float64 member per fitted array (``weights``, ``means``,
  ...), all in the model's dtype.

Loading treats the file as hostile: it is read with ``allow_pickle=False``,
the header is parsed before any array, every member's ``.npy`` header is
checked against the JSON header (dtype, shape, a size limit) before its data
is allocated, and the estimator's codec checks what the arrays mean (finite,
shapes of one model, weights summing to 1, positive-definite covariances
consistent with their precision factors).  Anything else is a ValueError
saying what is wrong.  Members or header fields the format does not define
are refused, not ignored: a file is exactly what this version writes.

``format_version`` grows when the layout changes; a file of a newer version
is refused with a message to upgrade fastem.

Every estimator plugs in by registering a codec (:func:`register`): how to
turn a fitted estimator into attributes and arrays, and how to check them
and rebuild the estimator.
"""
import contextlib
import json
import math
import os
import secrets
import struct
import zipfile
import zlib

import numpy as np

FORMAT_NAME = "fastem-model"
FORMAT_VERSION = 1

# Refuse before allocating: a model file is small.  A header larger than this
# is not ours; no array may hold more elements than a model of these sizes.
_MAX_HEADER_BYTES = 1 << 20
_MAX_ARRAY_ELEMENTS = 1 << 27      # 1 GiB of float64
_HEADER_FIELDS = {"format", "format_version", "fastem_version", "estimator", "params",
                  "attributes", "dtype", "arrays"}
_DTYPES = {"float32": np.float32, "float64": np.float64}

_CODECS = {}


def register(name, codec):
    """Make estimator class `name` savable: `codec` has ``dump`` and ``load``.

    ``codec.dump(estimator)`` returns ``(attributes, arrays)``: a dict of
    JSON scalars and a dict of float arrays in the model's dtype.
    ``codec.load(params, attributes, arrays)`` checks them (ValueError) and
    returns the fitted estimator.  ``codec.estimator`` is the class.
    """
    _CODECS[name] = codec


def _json_param(value):
    """Whether a parameter's value is plain JSON (saved) or not (arrays, callables: dropped)."""
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return True
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value)


def save(estimator, file):
    """Write a fitted estimator to `file` (see :meth:`fastem.GaussianMixture.save`)."""
    name = type(estimator).__name__
    codec = _CODECS.get(name)
    if codec is None or type(estimator) is not codec.estimator:
        raise TypeError(f"{name} cannot be saved: fastem saves {', '.join(sorted(_CODECS))}.")
    estimator._check_is_fitted()
    attributes, arrays = codec.dump(estimator)
    dtype = {np.asarray(a).dtype for a in arrays.values()}   # one: the codec casts them all
    params = {}
    for key, value in estimator.get_params().items():
        if _json_param(value):
            params[key] = value.item() if isinstance(value, np.generic) else value
    header = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "fastem_version": _fastem_version(), "estimator": name, "params": params,
        "attributes": attributes, "dtype": dtype.pop().name,
        "arrays": {key: list(np.shape(a)) for key, a in arrays.items()},
    }
    text = json.dumps(header, allow_nan=False).encode("utf-8")
    members = {"header": np.frombuffer(text, dtype=np.uint8), **arrays}
    if hasattr(file, "write"):
        np.savez(file, **members)
        return
    # Written beside the target and renamed over it: a reader never sees half a
    # file, and a failed save leaves the previous model in place.  The name is
    # kept as given (np.savez would append ".npz" to a bare name).
    path = os.fspath(file)
    partial = os.path.join(os.path.dirname(os.path.abspath(path)),
                           f".{os.path.basename(path)}.{secrets.token_hex(4)}.part")
    # os.open with 0o666 leaves the permissions to the umask, as open() would.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **members)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def _fastem_version():
    import fastem

    return fastem.__version__


def load(file):
    """Read an estimator that ``save`` wrote, checking everything in the file.

    Parameters
    ----------
    file : str, path-like or binary file object
        An ``.npz`` file written by ``est.save`` or ``fastem fit --out``.

    Returns
    -------
    estimator
        Fitted, of the class the file names; it predicts and scores exactly
        as the estimator that was saved.

    Raises
    ------
    ValueError
        If the file is not a fastem model, is damaged or inconsistent, or was
        written by a newer fastem (the message says to upgrade).
    OSError
        If the file cannot be opened.
    """
    if hasattr(file, "read"):
        return _load_open(file, "the file")
    # Opened here, not by np.load, which leaves its file open when the zip is bad.
    with open(file, "rb") as fh:
        return _load_open(fh, os.fspath(file))


# What reading a damaged zip or .npy member can raise besides ValueError:
# each becomes a ValueError naming the file.
_DAMAGE = (EOFError, OSError, RuntimeError, NotImplementedError, OverflowError, KeyError,
           UnicodeDecodeError, struct.error, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile)


def _load_open(fh, where):
    try:
        archive = np.load(fh, allow_pickle=False)
    except (ValueError, *_DAMAGE) as exc:
        raise ValueError(f"{where}: not a fastem model file (cannot read it as .npz: "
                         f"{_one_line(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):   # a .npy array
        raise ValueError(f"{where}: not a fastem model file (a single .npy array, not an .npz archive)")
    with archive:
        try:
            return _load_archive(archive, where)
        except _DAMAGE as exc:
            raise ValueError(f"{where}: not a fastem model file, or a damaged one "
                             f"({_one_line(exc)})") from None


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_archive(archive, where):
    if "header" not in archive.files:
        legacy = {"weights", "means", "covariances"} <= set(archive.files)
        raise ValueError(
            f"{where}: not a fastem model file (no header)"
            + ("; it looks like a model saved by fastem fit --out before model files "
               "had a header: fit and save it again" if legacy else ""))
    header = _read_header(_read_member(archive, "header", np.dtype(np.uint8), None, where), where)
    codec = _CODECS[header["estimator"]]
    dtype = np.dtype(_DTYPES[header["dtype"]])
    shapes = header["arrays"]
    present = set(archive.files) - {"header"}
    if present != set(shapes):
        extra, missing = sorted(present - set(shapes)), sorted(set(shapes) - present)
        raise ValueError(f"{where}: the arrays in the file do not match its header"
                         + (f"; missing: {', '.join(missing)}" if missing else "")
                         + (f"; not in the header: {', '.join(extra)}" if extra else ""))
    arrays = {key: _read_member(archive, key, dtype, tuple(shape), where)
              for key, shape in shapes.items()}
    try:
        return codec.load(header["params"], header["attributes"], arrays)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _read_header(raw, where):
    if raw.ndim != 1 or raw.size > _MAX_HEADER_BYTES:
        raise ValueError(f"{where}: not a fastem model file (its header is not a short byte string)")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError(f"{where}: not a fastem model file (its header is not JSON)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{where}: not a fastem model file (its header does not name the "
                         f"{FORMAT_NAME!r} format)")
    version = header.get("format_version")
    if type(version) is not int or version < 1:
        raise ValueError(f"{where}: not a fastem model file (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where} was written by fastem {header.get('fastem_version', '?')} in model format "
            f"version {version}; this fastem ({_fastem_version()}) reads versions up to "
            f"{FORMAT_VERSION}. Upgrade fastem to load it.")
    if set(header) != _HEADER_FIELDS:
        raise ValueError(f"{where}: the header's fields {sorted(header)} are not "
                         f"{sorted(_HEADER_FIELDS)}")
    if header["estimator"] not in _CODECS:
        raise ValueError(f"{where}: holds a {header['estimator']!r}, which this fastem cannot "
                         f"load (it loads {', '.join(sorted(_CODECS))})")
    if header["dtype"] not in _DTYPES:
        raise ValueError(f"{where}: dtype {header['dtype']!r} is not float32 or float64")
    for field in ("params", "attributes", "arrays"):
        if not isinstance(header[field], dict):
            raise ValueError(f"{where}: the header's {field} is not a JSON object")
    for key, shape in header["arrays"].items():
        if (not isinstance(shape, list) or len(shape) > 4
                or not all(type(n) is int and 0 <= n for n in shape)
                or math.prod(shape) > _MAX_ARRAY_ELEMENTS):
            raise ValueError(f"{where}: the header gives array {key!r} the shape {shape!r}, "
                             "not a model's")
    return header


def _no_constant(name):
    raise ValueError(f"{name} in the header")


def _read_member(archive, key, dtype, shape, where):
    """One array, its ``.npy`` header checked before any of its data is read.

    `shape` None: any 1-D shape up to the header limit.
    """
    member = key + ".npy"
    info = archive.zip.getinfo(member)
    try:
        with archive.zip.open(member) as fh:
            version = np.lib.format.read_magic(fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f".npy format version {version}")
            found_shape, _, found_dtype = read_header(fh)
    except ValueError as exc:
        raise ValueError(f"{where}: not a fastem model file (array {key!r}: {_one_line(exc)})") from None
    # The dtype is checked before np.load reads the member: an object array would
    # need unpickling (which allow_pickle=False refuses anyway), a wrong size is wasted.
    if found_dtype != dtype:
        raise ValueError(f"{where}: array {key!r} holds {found_dtype}, not {dtype}")
    if shape is None:
        if len(found_shape) != 1 or found_shape[0] > _MAX_HEADER_BYTES:
            raise ValueError(f"{where}: array {key!r} has shape {found_shape}")
    elif tuple(found_shape) != shape:
        raise ValueError(f"{where}: array {key!r} has shape {tuple(found_shape)}, but the "
                         f"header says {shape}")
    # NumPy allocates the whole array before reading it: a member too short for
    # its shape (a truncated file, a forged header) is refused first.
    needed = math.prod(found_shape) * dtype.itemsize
    if needed > info.file_size or (info.compress_type == zipfile.ZIP_STORED
                                   and needed > info.compress_size):
        raise ValueError(f"{where}: array {key!r} is truncated ({info.file_size} bytes for "
                         f"{needed} bytes of data)")
    try:
        return archive[key]
    except ValueError as exc:
        raise ValueError(f"{where}: array {key!r} is damaged ({_one_line(exc)})") from None



# ------------------------------------------------------------------
# checks the codecs share
# ------------------------------------------------------------------
def check_gaussian_parameters(covariance_type, weights, means, covariances, precisions_cholesky):
    """Refuse Gaussian mixture parameters that could not have come from a fit.

    The arrays' shapes are already those of one model (the loader checked them
    against the header).  Checked here: all finite; weights non-negative and
    summing to 1; every covariance positive definite (Cholesky succeeds);
    every precision factor triangular with a positive diagonal (the engine
    takes the log-determinant from it) and the inverse factor of its
    covariance, to a tolerance that grows with the covariance's condition
    number (float32 files are rounded copies of float64 results).

    Raises
    ------
    ValueError
        Naming the first array that fails.
    """
    from fastem import _covariance as cov_table

    named = {"weights": weights, "means": means, "covariances": covariances,
             "precisions_cholesky": precisions_cholesky}
    for key, array in named.items():
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{key} holds NaN or infinite values")
    eps = np.finfo(weights.dtype).eps
    if np.any(weights < 0) or not abs(float(np.sum(weights, dtype=np.float64)) - 1.0) <= 1e3 * eps:
        raise ValueError(f"weights must be non-negative and sum to 1 (they sum to "
                         f"{float(np.sum(weights, dtype=np.float64))!r})")
    kind = cov_table.covariance_type(covariance_type)
    cov_blocks = kind.blocks(np.asarray(covariances, dtype=np.float64))
    factor_blocks = kind.blocks(np.asarray(precisions_cholesky, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):   # a huge factor fails the test below
        for k, (cov, factor) in enumerate(zip(cov_blocks, factor_blocks)):
            _check_block(kind, k, cov, factor, eps)


def _check_block(kind, k, cov, factor, eps):
    """One covariance and its precision factor (see check_gaussian_parameters)."""
    if kind.matrix:
        # Sums in another order make the two triangles differ by rounding.
        if not np.all(np.abs(cov - cov.T) <= 1e3 * eps * np.max(np.abs(cov))):
            raise ValueError(f"covariance {k} is not symmetric")
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError(f"covariance {k} is not positive definite") from None
        triangular = not np.any(np.tril(factor, -1)) or not np.any(np.triu(factor, 1))
        if not triangular or not np.all(np.diag(factor) > 0):
            raise ValueError(f"precisions_cholesky {k} is not a triangular factor with a "
                             "positive diagonal")
        # F F^T = inv(cov)  <=>  F^T cov F = I; the residual grows with cond(cov).
        residual = np.max(np.abs(factor.T @ cov @ factor - np.eye(len(cov))))
        condition = np.linalg.cond(cov)
    else:
        if not (np.all(cov > 0) and np.all(factor > 0)):
            raise ValueError(f"covariances and precisions_cholesky of component {k} must "
                             "be positive")
        residual = np.max(np.abs(factor * factor * cov - 1.0))
        condition = 1.0
    if not residual <= 1e3 * eps * max(condition, 1.0):
        raise ValueError(f"precisions_cholesky {k} is not the inverse factor of covariance "
                         f"{k} (F^T cov F differs from the identity by {residual:.3g})")
