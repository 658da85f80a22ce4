"""The ``fastem`` command line.

``fastem fit [FILE]`` fits a Gaussian mixture to a CSV, TSV or ``.npy`` file
(or, without FILE, to the built-in example) and prints the fitted parameters
with the model's log-likelihood, BIC and AIC (``--json``: the same as one JSON
document).  With ``--missing em``, empty fields and NaN are missing values and
the fit is ``GaussianMixture(missing="em")``'s exact EM over the observed
values; without it they are errors.  ``fastem predict --model model.npz FILE``
labels the rows of FILE with a model that ``fastem fit --out`` saved (with
``--missing em``, rows with gaps from their observed values).
``fastem impute FILE -o OUT.csv`` fits a mixture with ``missing="em"`` (or
loads one with ``--model``) and writes FILE with its gaps filled by
``GaussianMixture.impute`` (``--std``: also each fill's standard deviation).
``fastem select FILE`` fits a grid of component counts and covariance types
(``fastem.select``) and prints their scores with the best marked.

``fastem bench`` times fastem against scikit-learn (and daal4py when it is
installed) over a grid of problems and prints a Markdown table; its logic
lives in ``fastem.bench``.

Each subcommand is registered by one ``_add_<name>_parser`` function whose
parser carries its handler as the ``handler`` default.

Exit status: 0 on success; 2 for bad usage or unreadable input (a missing or
unreadable file, non-numeric or non-finite data, a bad option value, a model
file whose features do not match FILE: the status argparse uses for bad
usage); 1 when the data were read but the fit failed (fewer rows than
components, a covariance that cannot be computed, a column with no observed
value).
Every error is one line on stderr; tracebacks are kept for real bugs.
Progress of long runs goes to stderr too (fastem._progress), and only when
stderr is a terminal.
"""
import argparse
import json
import math
import os
import sys
import tokenize
import warnings

import numpy as np

import fastem
from fastem import GaussianMixture, bench
from fastem._covariance import COVARIANCE_NAMES, covariance_matrices
from fastem._progress import Progress
from fastem._sources import row_blocks
from fastem.datasets import motivating_example

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_FIT_FAILED = 1

# Up to this many features, means and covariances are printed value by value;
# wider models get the mean vector and covariance diagonal on one line each.
MAX_FEATURES_PRINTED_IN_FULL = 4

# scikit-learn's defaults, used for data files.
DEFAULT_TOL = 1e-3
DEFAULT_MAX_ITER = 100


# Size of the built-in example's sample: the fit's sampling error (standard
# deviation about 0.006 on the weights, 0.02-0.05 on the means, 0.02-0.03 on
# the sigmas) is small next to the differences a reader looks for, and the fit
# takes a second or two.
BUILTIN_EXAMPLE_SAMPLES = 100_000
# The built-in example's two components overlap, so EM gains little lower
# bound per iteration while the means are still far from the optimum: with
# tol=1e-3 it stops after 4 iterations about 0.14 off in weight and 1.4 in
# mean.  It needs about 150 iterations to tol=1e-8, which puts the fit within
# sampling error of the truth (weights within 0.001 of the maximum-likelihood
# fit, means within 0.01).
BUILTIN_EXAMPLE_TOL = 1e-8
BUILTIN_EXAMPLE_MAX_ITER = 1000


class CLIError(Exception):
    """A user error, reported as one line on stderr with exit status 2."""


class FitError(CLIError):
    """A fit that failed on data that were read, reported with exit status 1."""


class _ArgumentParser(argparse.ArgumentParser):
    # argparse prints the usage block and exits itself; we want one line and a
    # return value from main(), so its errors become CLIError.
    def error(self, message):
        raise CLIError(message)


def _one_line(message):
    return " ".join(str(message).split())


# ---------------------------------------------------------------- option types

def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


# ----------------------------------------------------------------- data input

def load_data(path, mmap=False, *, delimiter=None, columns=None, missing=False):
    """Read a data file into a 2-D array, one sample per row.

    Parameters
    ----------
    path : str
        A ``.npy`` file (1-D or 2-D, real numbers), or any other name read as
        delimited text: one sample per line, an optional header row
        (recognised when none of its fields is a number), blank lines and
        ``#`` comments ignored.  A single column is one feature.
    mmap : bool, default=False
        Map a ``.npy`` file instead of reading it (``numpy.load(mmap_mode="r")``):
        the fit then reads it from disk once per pass, so it may be larger
        than memory.  Integer files stay integer here; the fit converts them
        block by block.
    delimiter : str or None, default=None
        The field separator of a text file; None: a tab for names ending in
        ``.tsv`` or ``.tab``, a comma otherwise.
    columns : str or None, default=None
        The features to keep, in this order: comma-separated header names
        or 0-based column indices (``"height,weight"``, ``"0,2"``).  Names
        need a header row.  With `mmap`, the chosen columns are copied into
        memory.
    missing : bool, default=False
        Read missing values as NaN (``--missing em``): empty fields of a
        text file, and NaN (``NaN``, ``nan``) anywhere.  Without it, NaN is
        an error.  Infinity is an error either way.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        float32 for a float32 ``.npy`` file, float64 otherwise.

    Raises
    ------
    CLIError
        If the file cannot be read or parsed, holds no samples, or holds
        infinite values (or NaN, unless `missing`).
    """
    return _read_data(path, mmap, delimiter=delimiter, columns=columns, missing=missing)[0]


def _read_data(path, mmap=False, *, delimiter=None, columns=None, missing=False, hint=""):
    """``load_data``'s array and the names of its columns (None without a header row).

    `hint` ends the messages about NaN and empty fields read without `missing`
    (:data:`MISSING_HINT` for the commands that have ``--missing``).
    """
    names = None
    if path.lower().endswith(".npy"):
        X = _load_npy(path, mmap)
    elif mmap:
        raise CLIError(f"{path}: --mmap needs a .npy file")
    else:
        if delimiter is None:
            delimiter = "\t" if path.lower().endswith((".tsv", ".tab")) else ","
        X, names = _load_text(path, delimiter, missing, hint)
    if columns is not None:
        chosen = _column_indices(path, columns, X.shape[1], names)
        X = X[:, chosen]
        names = None if names is None else [names[j] for j in chosen]
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CLIError(f"{path}: no data")
    # Block by block, so that a mapped file is not held in memory at once.
    for start, block in row_blocks(X):
        bad = np.isinf(block) if missing else ~np.isfinite(block)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            where = f"{path}: data row {start + row + 1}, column {col + 1} is {block[row, col]}"
            if missing:
                raise CLIError(f"{where}; fastem needs finite numbers, or NaN for a missing "
                               "value (no infinity)")
            raise CLIError(f"{where}; fastem needs finite numbers (no NaN or infinity)"
                           + (hint if np.isnan(block[row, col]) else ""))
    return X, names


# Ends the errors about NaN and empty fields read without --missing em, in the
# commands that have the option.
MISSING_HINT = "; with --missing em, NaN and empty fields are missing values"


def _missing_count(X):
    """NaN entries of X and rows with at least one, counted block by block (X may be mapped)."""
    values = rows = 0
    for _, block in row_blocks(X):
        gaps = np.isnan(block)
        values += int(np.count_nonzero(gaps))
        rows += int(np.count_nonzero(gaps.any(axis=1)))
    return values, rows


def _load_npy(path, mmap=False):
    try:
        # Mapped first, even to read into memory: mapping checks the header's
        # shape against the file's size, where reading would first allocate
        # what a damaged or hostile header claims (terabytes: MemoryError).
        with warnings.catch_warnings():
            # numpy warns of the overflow before it rejects an absurd shape.
            warnings.simplefilter("ignore", RuntimeWarning)
            array = np.load(path, allow_pickle=False, mmap_mode="r")
        if not mmap and isinstance(array, np.ndarray):
            array = np.array(array)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or _one_line(exc)}") from None
    except (ValueError, EOFError, tokenize.TokenError) as exc:
        # TokenError: numpy's parser of old-style headers, on a mangled header.
        raise CLIError(f"cannot read {path} as a .npy file: {_one_line(exc)}") from None
    if not isinstance(array, np.ndarray):
        array.close()  # an .npz archive, open until closed
        raise CLIError(f"{path}: expected a single .npy array")
    if array.dtype.kind not in "biuf":
        raise CLIError(f"{path}: expected real numbers, found dtype {array.dtype}")
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    elif array.ndim != 2:
        raise CLIError(f"{path}: expected a 1-D or 2-D array, found shape {array.shape}")
    if array.dtype not in (np.float32, np.float64) and not mmap:
        array = array.astype(np.float64)
    return array


def _content(line):
    """The data part of a CSV line: comments and surrounding blanks removed."""
    return line.split("#", 1)[0].strip()


def _is_number(field):
    try:
        float(field)
    except ValueError:
        return False
    return True


def _load_csv(path):
    return _load_text(path, ",")[0]


def _missing_or_number(field):
    # --missing em: an empty field is a missing value ("NaN" and "nan" parse as NaN anyway).
    return float(field) if field.strip() else math.nan


def _load_text(path, delimiter, missing=False, hint=""):
    """A delimited text file as (float64 array, header names or None).

    With `missing`, empty fields are NaN; without, `hint` ends the error about one.
    """
    names = None
    try:
        with open(path, encoding="utf-8-sig") as fh:
            header_line = _find_header(fh, delimiter, missing)
            if header_line is not None:
                fh.seek(0)
                line = next(line for index, line in enumerate(fh) if index == header_line)
                names = [field.strip() for field in _content(line).split(delimiter)]
            fh.seek(0)
            with warnings.catch_warnings():
                # An empty file is reported below; loadtxt's own warning would duplicate it.
                warnings.simplefilter("ignore", UserWarning)
                skiprows = 0 if header_line is None else header_line + 1
                try:
                    X = np.loadtxt(fh, delimiter=delimiter, skiprows=skiprows, ndmin=2,
                                   dtype=np.float64)
                except ValueError as exc:
                    error = exc
                    if missing:
                        # Empty fields: read again with a converter, in Python per field
                        # (slower, so only for files that need it).
                        fh.seek(0)
                        try:
                            X = np.loadtxt(fh, delimiter=delimiter, skiprows=skiprows, ndmin=2,
                                           dtype=np.float64, converters=_missing_or_number)
                            error = None
                        except ValueError as exc_again:
                            error = exc_again
                    if error is not None:
                        # loadtxt is fast but its positions ignore skipped lines;
                        # rescan in Python to name the file line that failed.
                        fh.seek(0)
                        raise CLIError(_describe_csv_error(
                            path, fh, header_line, error, delimiter, missing, hint)) from None
    except UnicodeDecodeError:
        raise CLIError(f"cannot read {path}: not a UTF-8 text (CSV) file") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or _one_line(exc)}") from None
    return X, names


def _column_indices(path, columns, n_columns, names):
    """The 0-based indices that ``--columns`` names, checked against the file."""
    indices = []
    for token in (token.strip() for token in columns.split(",")):
        if not token:
            raise CLIError(f"--columns {columns!r}: empty column name")
        if token.isdigit():
            index = int(token)
            if index >= n_columns:
                raise CLIError(
                    f"--columns: index {index} is out of range: {path} has {n_columns} "
                    f"column{'s' if n_columns != 1 else ''} (indices start at 0)")
        elif names is None:
            raise CLIError(f"--columns: {path} has no header row, so {token!r} names no column; "
                           "give 0-based indices")
        elif token not in names:
            raise CLIError(f"--columns: {path} has no column {token!r} "
                           f"(its columns: {', '.join(names)})")
        else:
            index = names.index(token)
        if index in indices:
            raise CLIError(f"--columns: column {token!r} is chosen twice")
        indices.append(index)
    return indices


def _find_header(fh, delimiter=",", missing=False):
    """Return the 0-based line index of a header row, or None if the first row is data.

    The first non-blank, non-comment line is a header when none of its fields
    parses as a number (with `missing`, an empty field counts as a number: a
    missing one, so a first sample with gaps is not taken for a header).  A
    line that mixes numbers and text is left to the parser, which reports it:
    silently skipping a mistyped first sample would hide the mistake.
    """
    for index, line in enumerate(fh):
        content = _content(line)
        if content:
            fields = [field.strip() for field in content.split(delimiter)]
            return None if any(_is_value(field, missing) for field in fields) else index
    return None


def _is_value(field, missing):
    """A field that reads as a number, or (with `missing`) an empty field."""
    return _is_number(field) or (missing and not field)


def _describe_csv_error(path, fh, header_line, exc, delimiter=",", missing=False, hint=""):
    n_fields = None
    for index, line in enumerate(fh):
        content = _content(line)
        if not content or index == header_line:
            continue
        fields = [field.strip() for field in content.split(delimiter)]
        if n_fields is None:
            n_fields = len(fields)
        elif len(fields) != n_fields:
            return f"{path} line {index + 1}: expected {n_fields} values, found {len(fields)}"
        for col, field in enumerate(fields):
            if not _is_value(field, missing):
                return (
                    f"{path} line {index + 1}, column {col + 1}: "
                    f"cannot read {field!r} as a number" + ("" if field else hint)
                )
    kind = "TSV" if delimiter == "\t" else "CSV"
    return f"cannot parse {path} as numeric {kind}: {_one_line(exc)}"


def _delimiter(text):
    if text.lower() in ("tab", "\\t", "\t"):
        return "\t"
    if len(text) != 1 or text in "#\n\r\"" or text.isalnum() or text in "+-.":
        raise argparse.ArgumentTypeError(
            f"expected one separator character or 'tab', got {text!r}")
    return text


def _add_input_options(parser):
    """``--columns`` and ``--delimiter``, for every subcommand that reads FILE."""
    parser.add_argument(
        "--columns", metavar="LIST", default=None,
        help="features to use, in this order: comma-separated header names or 0-based "
             "indices (e.g. height,weight or 0,2); default: every column",
    )
    parser.add_argument(
        "--delimiter", type=_delimiter, default=None, metavar="CHAR",
        help="field separator of a text FILE: one character, or 'tab' "
             "(default: tab for .tsv/.tab files, comma otherwise)",
    )


def _load_input(args, mmap=False, missing=False):
    """FILE as ``_add_input_options`` asked for it (``args.file``, ``--columns``, ``--delimiter``)."""
    return _read_input(args, mmap, missing)[0]


def _read_input(args, mmap=False, missing=False):
    """``_load_input``'s array and its column names (None without a header row)."""
    if args.delimiter is not None and args.file.lower().endswith(".npy"):
        raise CLIError("--delimiter applies only to a text FILE, not .npy")
    return _read_data(args.file, mmap=mmap, delimiter=args.delimiter, columns=args.columns,
                      missing=missing, hint=MISSING_HINT if hasattr(args, "missing") else "")


def _add_progress_option(parser):
    """``--quiet``, for every subcommand that shows progress (fastem._progress)."""
    parser.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress display (progress is shown on stderr only when it is a "
             "terminal, and only for runs longer than half a second)",
    )


# ----------------------------------------------------------------- formatting

def _fmt(value):
    return f"{value:.6g}"


def _render_table(header, rows):
    """Align columns: the first left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _covariance_matrices(model):
    """Every component's covariance as a (n_components, n_features, n_features) array."""
    return covariance_matrices(model.covariances_, model.covariance_type, *model.means_.shape)


def _compact_vector(values):
    return np.array2string(
        np.asarray(values),
        max_line_width=10**6,
        threshold=12,
        edgeitems=4,
        formatter={"float_kind": lambda v: f"{v:.4g}"},
    )


def _component_report(model):
    """The per-component table (values in full) or block list (wide data)."""
    k, d = model.means_.shape
    cov_type = model.covariance_type
    weights, means = model.weights_, model.means_
    variances = np.diagonal(_covariance_matrices(model), axis1=1, axis2=2)
    if d > MAX_FEATURES_PRINTED_IN_FULL:
        label = {
            "full": "covariance diagonal",
            "tied": "covariance diagonal (tied: shared by all components)",
            "diag": "covariance diagonal",
            "spherical": "variance (spherical: every feature)",
        }[cov_type]
        width = len(label)
        lines = []
        for j in range(k):
            cov_text = _fmt(model.covariances_[j]) if cov_type == "spherical" else _compact_vector(variances[j])
            lines += [
                f"component {j}  weight {_fmt(weights[j])}",
                f"  {'mean'.ljust(width)}  {_compact_vector(means[j])}",
                f"  {label}  {cov_text}",
            ]
        return "\n".join(lines)

    # Small d: one line per feature, so the mean reads as a column vector and
    # the covariance as a matrix beside it.  Numbers share one width per column.
    header = ["component", "weight", "mean"]
    if cov_type != "tied":
        header.append({
            "full": "covariance",
            "diag": "variance (diag)",
            "spherical": "variance (spherical)",
        }[cov_type])
    entries = [_fmt(v) for v in model.covariances_.ravel()]
    entry_width = max(len(e) for e in entries)
    matrices = _covariance_matrices(model)
    rows = []
    for j in range(k):
        if j and d > 1:
            rows.append([""] * len(header))
        for i in range(d):
            row = [str(j) if i == 0 else "", _fmt(weights[j]) if i == 0 else "", _fmt(means[j, i])]
            if cov_type == "full":
                row.append("  ".join(_fmt(v).rjust(entry_width) for v in matrices[j, i]))
            elif cov_type == "diag":
                row.append(_fmt(variances[j, i]))
            elif cov_type == "spherical":
                row.append(_fmt(model.covariances_[j]) if i == 0 else "")
            rows.append(row)
    text = _render_table(header, rows)
    if cov_type == "tied":
        text += "\n\ncovariance (tied: shared by all components)\n" + "\n".join(
            "  " + "  ".join(_fmt(v).rjust(entry_width) for v in row) for row in model.covariances_
        )
    return text


def _comparison_report(model, truth):
    """Fitted 1-D components beside the true ones, both sorted by mean."""
    order = np.argsort(model.means_[:, 0], kind="stable")
    sigmas = np.sqrt(np.diagonal(_covariance_matrices(model), axis1=1, axis2=2)[:, 0])
    header = ["component", "weight", "true weight", "mean", "true mean", "sigma", "true sigma"]
    rows = [
        [
            str(j),
            _fmt(model.weights_[j]), _fmt(truth.weights[t]),
            _fmt(model.means_[j, 0]), _fmt(truth.means[t]),
            _fmt(sigmas[j]), _fmt(truth.sigmas[t]),
        ]
        for t, j in enumerate(order)
    ]
    return (
        "fitted vs true parameters (components matched by sorting on the mean):\n"
        + _render_table(header, rows)
    )


def _summary_report(model, X):
    n = X.shape[0]
    average = model.score(X)
    rows = [
        ["average log-likelihood per sample", _fmt(average)],
        ["total log-likelihood", f"{average * n:.4f}"],
        ["BIC", f"{model.bic(X):.4f}"],
        ["AIC", f"{model.aic(X):.4f}"],
        ["lower bound (last EM iteration)", _fmt(model.lower_bound_)],
        ["iterations", str(model.n_iter_)],
        ["converged", "yes" if model.converged_ else "no"],
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


# ------------------------------------------------------------------ fit

def _check_out_path(path, option="--out"):
    """Fail before the work, not after, when its output could not be saved."""
    if path is None:
        return
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"{option} {path}: directory {parent} does not exist")


def save_model(path, model):
    """Write the fitted model to `path` in fastem's model format (``model.save``).

    Parameters
    ----------
    path : str
        Written under the name given (no ``.npz`` appended).
    model : fitted GaussianMixture

    Notes
    -----
    The file is the one :meth:`fastem.GaussianMixture.save` writes and
    :func:`fastem.load` reads: an ``.npz`` archive with a JSON header and the
    fitted arrays, readable without pickle.
    """
    model.save(path)


def _run_fit(args):
    truth = None
    if args.file is None:
        if args.mmap:
            raise CLIError("--mmap applies only to a .npy FILE")
        n_samples = BUILTIN_EXAMPLE_SAMPLES if args.n_samples is None else args.n_samples
        X, truth = motivating_example(n_samples, random_state=args.seed)
        source = (
            "built-in example 0.6 N(2, 4^2) + 0.4 N(9, 2^2), "
            f"drawn with seed {args.seed}"
        )
        tol = BUILTIN_EXAMPLE_TOL if args.tol is None else args.tol
        max_iter = BUILTIN_EXAMPLE_MAX_ITER if args.max_iter is None else args.max_iter
    else:
        if args.n_samples is not None:
            raise CLIError("--n-samples applies only to the built-in example (no FILE)")
        X = _load_input(args, mmap=args.mmap, missing=args.missing == "em")
        source = args.file + (" (memory-mapped)" if args.mmap else "")
        tol = DEFAULT_TOL if args.tol is None else args.tol
        max_iter = DEFAULT_MAX_ITER if args.max_iter is None else args.max_iter
    if args.file is None and (args.columns is not None or args.delimiter is not None):
        raise CLIError("--columns and --delimiter apply only to a FILE")
    _check_out_path(args.out)
    _check_plot_path(args.plot)

    model = _fit_mixture(X, args, tol, max_iter, missing=args.missing)
    if args.json:
        if args.plot is not None:
            _write_plot(args.plot, "write_model_plot", model, X, announce=False)
        return _print_fit_json(model, X, source, args, tol, max_iter)

    threads = fastem.effective_n_threads(args.threads)
    print(f"fastem {fastem.__version__} GaussianMixture fit")
    print(f"data:  {_describe_data(source, X, args.missing == 'em')}")
    print(
        f"model: {args.n_components} component{'s' if args.n_components != 1 else ''}, "
        f"covariance_type={args.covariance_type}, n_init={args.n_init}, "
        f"max_iter={max_iter}, tol={tol:g}, seed={args.seed}, "
        f"threads={threads}" + (", missing=em" if args.missing == "em" else "")
    )
    if args.file is None and args.tol is None:
        print(
            f"note:  tol={tol:g} is the built-in example's default: with scikit-learn's "
            f"tol={DEFAULT_TOL:g}, EM stops here after a few iterations, far from the optimum"
        )
    print()
    if truth is not None and args.n_components == len(truth.weights):
        print(_comparison_report(model, truth))
    else:
        print(_component_report(model))
        if truth is not None:
            print(
                f"\nthe true mixture has {len(truth.weights)} components (weights "
                f"{_compact_vector(truth.weights)}, means {_compact_vector(truth.means)}, "
                f"sigmas {_compact_vector(truth.sigmas)}); "
                f"use -k {len(truth.weights)} to compare"
            )
    print()
    print(_summary_report(model, X))

    if args.out is not None:
        _save_model_or_fail(args.out, model)
        print(f"\nmodel saved to {args.out}")
    if args.plot is not None:
        _write_plot(args.plot, "write_model_plot", model, X)
    return 0


def _fit_mixture(X, args, tol, max_iter, missing="error"):
    """Fit the GaussianMixture that the model options in `args` describe, with progress.

    Warnings (a fit that stopped at --max-iter) become one stderr line each;
    a fit that fails is a FitError.
    """
    progress = Progress(args.command, unit="iteration", quiet=args.quiet)
    model = GaussianMixture(
        n_components=args.n_components,
        covariance_type=args.covariance_type,
        tol=tol,
        max_iter=max_iter,
        n_init=args.n_init,
        random_state=args.seed,
        n_threads=args.threads,
        callback=progress.on_iteration,
        missing=missing,
    )
    with warnings.catch_warnings(record=True) as caught, progress:
        warnings.simplefilter("always")
        try:
            model.fit(X)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            # The data were read and the options parsed: the fit itself failed.
            raise FitError(f"cannot fit: {_one_line(exc)}") from None
    for warning in caught:
        print(f"fastem: warning: {_one_line(warning.message)}", file=sys.stderr)
    return model


def _describe_data(source, X, missing):
    """The report's data line: source, shape, dtype and (with `missing`) the gaps."""
    n, d = X.shape
    text = f"{source}: {n} samples x {d} feature{'s' if d != 1 else ''} ({X.dtype})"
    if missing:
        values, rows = _missing_count(X)
        text += (f", {values} missing value{'s' if values != 1 else ''} ({values / X.size:.1%}) "
                 f"in {rows} row{'s' if rows != 1 else ''}")
    return text


def _print_fit_json(model, X, source, args, tol, max_iter):
    """``fastem fit --json``: the fit as one JSON document on stdout, nothing else."""
    n, d = X.shape
    average = model.score(X)
    data = {"source": source, "n_samples": n, "n_features": d, "dtype": str(X.dtype)}
    if args.missing == "em":
        data["n_missing_values"], data["n_rows_with_missing"] = _missing_count(X)
    report = {
        "fastem_version": fastem.__version__,
        "data": data,
        "options": {
            "n_components": args.n_components, "covariance_type": args.covariance_type,
            "n_init": args.n_init, "max_iter": max_iter, "tol": tol, "seed": args.seed,
            "threads": fastem.effective_n_threads(args.threads), "missing": args.missing,
        },
        # The estimator's arrays, nested as they are: covariances_ is (K, D, D)
        # full, (D, D) tied, (K, D) diag, (K,) spherical.
        "weights": model.weights_.tolist(),
        "means": model.means_.tolist(),
        "covariances": model.covariances_.tolist(),
        "scores": {
            "log_likelihood_per_sample": average,
            "log_likelihood": average * n,
            "bic": model.bic(X),
            "aic": model.aic(X),
            "lower_bound": float(model.lower_bound_),
        },
        "n_iter": int(model.n_iter_),
        "converged": bool(model.converged_),
        "model_file": args.out,
    }
    if args.out is not None:
        _save_model_or_fail(args.out, model)
    print(json.dumps(report, indent=2))
    return 0


def _save_model_or_fail(path, model):
    try:
        save_model(path, model)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or _one_line(exc)}") from None


def _check_plot_path(path):
    """--plot: matplotlib and a writable image name, checked before the work."""
    if path is None:
        return
    try:
        from fastem import plotting

        plotting.check_plot_path(path)
    except (ImportError, ValueError) as exc:
        raise CLIError(f"--plot: {_one_line(exc)}") from None


def _write_plot(path, writer, *args, announce=True):
    """Write a figure with one of fastem.plotting's write_* functions.

    `announce` prints where it went (not under --json, whose stdout is the document).
    """
    from fastem import plotting

    try:
        getattr(plotting, writer)(*args, path)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or _one_line(exc)}") from None
    if announce:
        print(f"\nfigure saved to {path}")


def _add_model_options(parser, builtin_example=False):
    """The mixture's options, for every subcommand that fits one (fit, impute)."""
    parser.add_argument("-k", "--n-components", type=_int_at_least(1), default=2,
                        help="number of mixture components (default: 2)")
    parser.add_argument("--covariance-type", choices=COVARIANCE_NAMES, default="full",
                        help="covariance parametrisation (default: full)")
    builtin_max_iter = f"; {BUILTIN_EXAMPLE_MAX_ITER} for the built-in example" if builtin_example else ""
    parser.add_argument("--max-iter", type=_int_at_least(1), default=None,
                        help=f"maximum EM iterations per initialisation "
                             f"(default: {DEFAULT_MAX_ITER}{builtin_max_iter})")
    builtin_tol = (f"; {BUILTIN_EXAMPLE_TOL:g} for the built-in example, where EM stops far "
                   "from the optimum at 1e-3" if builtin_example else "")
    parser.add_argument("--tol", type=_non_negative_float, default=None,
                        help=f"convergence threshold on the lower bound's gain per iteration "
                             f"(default: {DEFAULT_TOL:g}{builtin_tol})")
    parser.add_argument("--seed", type=_int_at_least(0), default=0,
                        help="random seed for initialisation"
                             + (" and the built-in example" if builtin_example else "") + " (default: 0)")
    parser.add_argument("--n-init", type=_int_at_least(1), default=1,
                        help="number of initialisations; the best is kept (default: 1)")
    parser.add_argument("--threads", type=_int_at_least(1), default=None,
                        help="OpenMP threads (default: OpenMP's limit, capped at the CPUs available)")


def _add_fit_parser(subparsers):
    parser = subparsers.add_parser(
        "fit",
        help="fit a Gaussian mixture to a data file (or the built-in example)",
        description=(
            "Fit a Gaussian mixture by EM and print its parameters, log-likelihood,\n"
            "BIC and AIC. Without FILE, fit the built-in example (a 1-D mixture of\n"
            "N(2, 4^2) and N(9, 2^2) with weights 0.6/0.4) and compare with the truth."
        ),
        epilog=FIT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", nargs="?", metavar="FILE",
        help="data, one sample per row: CSV (optional header row), TSV (.tsv, or "
             "--delimiter) or .npy (1-D or 2-D)",
    )
    _add_input_options(parser)
    _add_model_options(parser, builtin_example=True)
    parser.add_argument("--missing", choices=("error", "em"), default="error",
                        help="error: NaN in FILE is an error; em: empty fields and NaN are "
                             "missing values, fitted by exact EM over the observed values "
                             "(GaussianMixture(missing='em')) (default: error)")
    parser.add_argument("--out", metavar="PATH", default=None,
                        help="save the fitted parameters to PATH with numpy.savez")
    parser.add_argument("--n-samples", type=_int_at_least(1), default=None,
                        help=f"sample size of the built-in example (default: {BUILTIN_EXAMPLE_SAMPLES})")
    parser.add_argument("--mmap", action="store_true",
                        help="memory-map a .npy FILE instead of reading it: the fit reads it "
                             "from disk once per pass, so it may be larger than memory")
    parser.add_argument("--json", action="store_true",
                        help="print the fit as JSON on stdout instead of the report (weights, "
                             "means, covariances, scores, n_iter, converged)")
    _add_progress_option(parser)
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save a figure of the fit (needs matplotlib: "
                             'pip install "fastem[plot]"): for one feature, the histogram with '
                             "each component's density and the mixture's; for more, features 0 "
                             "and 1 coloured by component with 1 and 2 sigma ellipses")
    parser.set_defaults(handler=_run_fit)


# ------------------------------------------------------------------ select

def _component_counts(text):
    """``-k`` of ``fastem select``: "1-9", "2,3,5" or a mix such as "1-4,8"."""
    counts = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            low, high = int(low), int(high if dash else low)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected counts such as 1-9 or 2,3,5, got {text!r}") from None
        if low < 1 or high < low:
            raise argparse.ArgumentTypeError(
                f"expected counts >= 1 and ranges low-high with low <= high, got {text!r}")
        counts.extend(range(low, high + 1))
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"component counts repeat in {text!r}")
    return counts


def _covariance_list(text):
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in COVARIANCE_NAMES]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct names among {','.join(COVARIANCE_NAMES)}, got {text!r}")
    return names


def _run_select(args):
    from fastem.select import select

    if args.criterion == "held_out" and args.test is None:
        raise CLIError("--criterion held_out needs --test FILE (the held-out rows)")
    _check_plot_path(args.plot)
    X = _load_input(args)
    X_test = None
    if args.test is not None:  # the same columns as FILE
        X_test = load_data(args.test, delimiter=args.delimiter, columns=args.columns)
        if X_test.shape[1] != X.shape[1]:
            raise CLIError(f"{args.test} has {X_test.shape[1]} features, {args.file} has {X.shape[1]}")
    progress = Progress("select", unit="candidate", quiet=args.quiet)
    with warnings.catch_warnings(record=True) as caught, progress:
        warnings.simplefilter("always")
        try:
            result = select(
                X, args.n_components, args.covariance_types, args.criterion, X_test=X_test,
                random_state=args.seed, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
                n_threads=args.threads, on_candidate=progress.on_candidate,
            )
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            # The data were read: too few rows for the largest K, or a candidate's fit failed.
            raise FitError(f"cannot select: {_one_line(exc)}") from None
    for warning in caught:
        print(f"fastem: warning: {_one_line(warning.message)}", file=sys.stderr)
    if args.json:
        json.dump({"criterion": result.criterion, "best_index": result.best_index_,
                   "best_params": result.best_params_, "table": result.table}, sys.stdout, indent=2)
        print()
        if args.plot is not None:
            _write_plot(args.plot, "write_selection_plot", result, announce=False)
        return 0
    n, d = X.shape
    print(f"fastem {fastem.__version__} model selection")
    print(f"data:  {args.file}: {n} samples x {d} feature{'s' if d != 1 else ''} ({X.dtype})")
    print(f"grid:  {len(result.estimators_)} candidates, criterion={args.criterion}, "
          f"n_init={args.n_init}, max_iter={args.max_iter}, tol={args.tol:g}, seed={args.seed}")
    print()
    print(result.format_table())
    if args.plot is not None:
        _write_plot(args.plot, "write_selection_plot", result)
    return 0


def _add_select_parser(subparsers):
    parser = subparsers.add_parser(
        "select",
        help="choose the number of components and the covariance type (BIC, AIC or held-out)",
        description=(  # wrapped by hand: the raw formatter keeps the examples' lines
            "Fit a Gaussian mixture for every number of components and covariance type\n"
            "in the grid, print each one's score, and mark the best (lowest BIC or AIC,\n"
            "or highest held-out log-likelihood per sample)."
        ),
        epilog=(
            "examples:\n"
            "  fastem select data.csv                      # K = 1..9, all four covariance types, BIC\n"
            "  fastem select data.npy -k 1-6 --covariance-types full,diag --criterion aic\n"
            "  fastem select data.tsv --columns height,weight -k 2,3,5\n"
            "  fastem select train.csv --criterion held_out --test test.csv --json\n"
            "\n"
            "output: one line per candidate (K, covariance type, score, converged,\n"
            "iterations, seconds), the best marked with *; with --json the criterion,\n"
            "the best candidate and the table (a dict of lists) as JSON.\n"
            "exit status: 0 success; 2 bad usage or unreadable input; 1 a fit failed\n"
            "(including a K larger than the number of rows)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE",
                        help="CSV (comma-separated, one sample per row, optional header row) or .npy file")
    parser.add_argument("-k", "--n-components", type=_component_counts, default=list(range(1, 10)),
                        metavar="COUNTS",
                        help="component counts to try: a range 1-9, a list 2,3,5, or both (default: 1-9)")
    parser.add_argument("--covariance-types", type=_covariance_list, default=list(COVARIANCE_NAMES),
                        metavar="LIST",
                        help=f"comma-separated covariance types (default: {','.join(COVARIANCE_NAMES)})")
    parser.add_argument("--criterion", choices=("bic", "aic", "held_out"), default="bic",
                        help="bic or aic on FILE (lower is better), or held_out: the mean "
                             "log-likelihood of --test (higher is better) (default: bic)")
    parser.add_argument("--test", metavar="FILE", default=None,
                        help="held-out rows, same format and features as FILE")
    parser.add_argument("--max-iter", type=_int_at_least(1), default=DEFAULT_MAX_ITER,
                        help=f"maximum EM iterations per initialisation (default: {DEFAULT_MAX_ITER})")
    parser.add_argument("--tol", type=_non_negative_float, default=DEFAULT_TOL,
                        help=f"convergence threshold on the lower bound's gain (default: {DEFAULT_TOL:g})")
    parser.add_argument("--seed", type=_int_at_least(0), default=0,
                        help="random seed; every candidate equals `fastem fit` with this seed (default: 0)")
    parser.add_argument("--n-init", type=_int_at_least(1), default=1,
                        help="initialisations per candidate; the best is kept (default: 1)")
    parser.add_argument("--threads", type=_int_at_least(1), default=None,
                        help="threads in all (default: OpenMP's limit, capped at the CPUs available)")
    parser.add_argument("--json", action="store_true",
                        help="print the criterion, the best candidate and the table as JSON instead")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save a figure of the score against K, one line per covariance "
                             'type, the winner marked (needs matplotlib: pip install "fastem[plot]")')
    _add_input_options(parser)
    _add_progress_option(parser)
    parser.set_defaults(handler=_run_select)


# ------------------------------------------------------------------ predict

def load_model(path):
    """The fitted estimator that ``fastem fit --out`` (or ``est.save``) wrote to `path`.

    Parameters
    ----------
    path : str

    Returns
    -------
    GaussianMixture
        Fitted, as :func:`fastem.load` returns it.

    Raises
    ------
    CLIError
        If the file cannot be read or is not a fastem model file (the
        message is :func:`fastem.load`'s).
    """
    try:
        return fastem.load(path)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or _one_line(exc)}") from None
    except ValueError as exc:
        raise CLIError(_one_line(exc)) from None


def _run_predict(args):
    model = load_model(args.model)
    X = _load_input(args, missing=args.missing == "em")
    _check_out_path(args.out)
    if args.missing == "em":
        # Inference from each row's observed values holds for any fitted mixture,
        # whichever way it was fitted.
        model.set_params(missing="em")
    if X.shape[1] != model.n_features_in_:
        chosen = " chosen by --columns" if args.columns is not None else ""
        raise CLIError(
            f"{args.file} has {X.shape[1]} feature{'s' if X.shape[1] != 1 else ''}{chosen}, "
            f"but the model in {args.model} has {model.n_features_in_}")
    if args.proba:
        values = model.predict_proba(X)
        header = ",".join(f"p{j}" for j in range(values.shape[1]))
        fmt = "%.10g"
    else:
        values = model.predict(X)
        header, fmt = "label", "%d"
    try:
        if args.out is None:
            np.savetxt(sys.stdout, values, fmt=fmt, delimiter=",", header=header, comments="")
        else:
            np.savetxt(args.out, values, fmt=fmt, delimiter=",", header=header, comments="")
    except OSError as exc:
        raise CLIError(f"cannot write {args.out}: {exc.strerror or _one_line(exc)}") from None
    return 0


PREDICT_EXAMPLES = """\
examples:
  fastem fit data.csv -k 3 --out model.npz      # fit and save a model
  fastem predict --model model.npz data.csv     # one label per row, on stdout
  fastem predict --model model.npz new.tsv --proba --out proba.csv
  fastem predict --model model.npz data.csv --columns x,y
  fastem predict --model model.npz gappy.csv --missing em   # rows with gaps

output: CSV with a header row: "label" and one component index (from 0) per
row of FILE, or with --proba "p0,p1,..." and each component's posterior
probability.
"""


def _add_predict_parser(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="label the rows of a data file with a model saved by fit --out",
        description=(
            "Assign each row of FILE to its most probable component (or, with --proba,\n"
            "give every component's posterior probability) under a model that\n"
            "`fastem fit --out model.npz` saved."
        ),
        epilog=PREDICT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE",
                        help="data, one sample per row: CSV, TSV or .npy, with the model's features")
    parser.add_argument("--model", metavar="MODEL.npz", required=True,
                        help="model file written by fastem fit --out")
    parser.add_argument("--proba", action="store_true",
                        help="write each component's probability instead of the label")
    parser.add_argument("--out", metavar="PATH", default=None,
                        help="write the CSV to PATH instead of stdout")
    parser.add_argument("--missing", choices=("error", "em"), default="error",
                        help="error: NaN in FILE is an error; em: empty fields and NaN are "
                             "missing values, and each row is labelled from its observed "
                             "values (default: error)")
    _add_input_options(parser)
    parser.set_defaults(handler=_run_predict)


# ------------------------------------------------------------------ impute

# The fit options that a model loaded with --model makes meaningless (--threads
# still sets the threads of the fill).  The impute parser leaves their defaults
# at None, so that an option given with --model can be told from one not given.
_FIT_ONLY_OPTIONS = {"n_components": "-k/--n-components", "covariance_type": "--covariance-type",
                     "max_iter": "--max-iter", "tol": "--tol", "seed": "--seed", "n_init": "--n-init"}
_FIT_DEFAULTS = {"n_components": 2, "covariance_type": "full", "seed": 0, "n_init": 1}


def _write_table(path, values, names, fmt):
    """Write `values` as CSV to `path` (stdout when None), a header row first when `names`."""
    header = "" if names is None else ",".join(names)
    try:
        np.savetxt(sys.stdout if path is None else path, values, fmt=fmt, delimiter=",",
                   header=header, comments="")
    except OSError as exc:
        where = "to stdout" if path is None else path
        raise CLIError(f"cannot write {where}: {exc.strerror or _one_line(exc)}") from None


def _run_impute(args):
    given = [option for name, option in _FIT_ONLY_OPTIONS.items() if getattr(args, name) is not None]
    if args.model is not None and given:
        raise CLIError(f"{', '.join(given)} set how a model is fitted: they do not apply "
                       f"with --model {args.model}")
    if args.std is not None and args.out is not None and (
            os.path.abspath(args.std) == os.path.abspath(args.out)):
        raise CLIError(f"--std and --out are both {args.out}")
    _check_out_path(args.out)
    _check_out_path(args.std, "--std")
    model = load_model(args.model) if args.model is not None else None
    X, names = _read_input(args, missing=True)
    if model is not None:
        if X.shape[1] != model.n_features_in_:
            chosen = " chosen by --columns" if args.columns is not None else ""
            raise CLIError(
                f"{args.file} has {X.shape[1]} feature{'s' if X.shape[1] != 1 else ''}{chosen}, "
                f"but the model in {args.model} has {model.n_features_in_}")
        if args.threads is not None:
            model.n_threads = args.threads
        described = f"loaded from {args.model}"
    else:
        for name, default in _FIT_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
        tol = DEFAULT_TOL if args.tol is None else args.tol
        max_iter = DEFAULT_MAX_ITER if args.max_iter is None else args.max_iter
        model = _fit_mixture(X, args, tol, max_iter, missing="em")
        described = (f"fitted with missing=em: {args.n_components} component"
                     f"{'s' if args.n_components != 1 else ''}, "
                     f"covariance_type={args.covariance_type}, {model.n_iter_} iterations, "
                     f"{'converged' if model.converged_ else 'not converged'}, "
                     f"log-likelihood per sample {_fmt(model.score(X))}")
    if args.std is None:
        filled, std = model.impute(X), None
    else:
        filled, std = model.impute(X, return_std=True)
    # %s writes each number's shortest exact form: observed values come out as read.
    _write_table(args.out, filled, names, "%s")
    if std is not None:
        _write_table(args.std, std, names, "%.10g")
    if args.out is None:   # stdout holds the data, nothing else
        return 0
    print(f"fastem {fastem.__version__} impute")
    print(f"data:  {_describe_data(args.file, X, missing=True)}")
    print(f"model: {described}")
    print(f"\nfilled data saved to {args.out}")
    if std is not None:
        print(f"standard deviations saved to {args.std}")
    return 0


IMPUTE_EXAMPLES = f"""\
examples:
  fastem impute data.csv -o filled.csv                  # fit 2 full components, fill the gaps
  fastem impute data.csv -o filled.csv -k 4 --seed 1 --std filled_std.csv
  fastem impute new.csv -o filled.csv --model model.npz # with a saved model
  fastem impute data.tsv --columns height,weight > filled.csv

input: as for fit; empty fields and NaN (NaN, nan) are missing values.
output: CSV, the rows of FILE with every missing value replaced by its
conditional expectation given the row's observed values, under the mixture;
observed values unchanged (each number in its shortest exact form); a header
row when FILE had one.
--std: a CSV of the same shape with the standard deviation of each filled value
given the row's observed values (0 where a value was observed).
exit status: 0 success; {EXIT_USAGE} bad usage or unreadable input; {EXIT_FIT_FAILED} the fit failed
(including a column with no observed value).
"""


def _add_impute_parser(subparsers):
    parser = subparsers.add_parser(
        "impute",
        help="fill the missing values of a data file with a Gaussian mixture",
        description=(
            "Fit a Gaussian mixture to the observed values of FILE by exact EM\n"
            "(GaussianMixture(missing='em')), or load one with --model, and write FILE\n"
            "with each missing value (an empty field or NaN) replaced by its conditional\n"
            "expectation given the observed values of its row."
        ),
        epilog=IMPUTE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE",
                        help="data, one sample per row: CSV, TSV or .npy; empty fields and NaN "
                             "are missing values")
    parser.add_argument("-o", "--out", metavar="OUT.csv", default=None,
                        help="write the filled data to OUT.csv and a summary to stdout "
                             "(default: the filled data to stdout, nothing else)")
    parser.add_argument("--std", metavar="OUT_STD.csv", default=None,
                        help="also write the standard deviation of every filled value "
                             "(0 at observed values)")
    parser.add_argument("--model", metavar="MODEL.npz", default=None,
                        help="fill with this saved model (fastem fit --out) instead of fitting one")
    _add_input_options(parser)
    _add_model_options(parser)
    # None: "not given", told apart from the default for --model (see _FIT_ONLY_OPTIONS).
    parser.set_defaults(**{name: None for name in _FIT_DEFAULTS})
    _add_progress_option(parser)
    parser.set_defaults(handler=_run_impute)


# ------------------------------------------------------------------ bench

def _run_bench(args):
    # Cheap mistakes in the command line first, then what is missing from the environment.
    try:
        cases = bench.select_cases(args.cases, quick=args.quick, grid=bench.GRID)
    except bench.BenchError as exc:
        raise CLIError(exc) from None
    _check_out_path(args.json, "--json")
    _check_out_path(args.plot, "--plot")
    try:
        bench.check_requirements(plot=args.plot is not None)
    except bench.BenchError as exc:
        raise CLIError(exc) from None

    results = bench.run_bench(
        cases, threads=args.threads, repeats=args.repeats, quick=args.quick, progress=sys.stderr,
        scaling=not args.no_scaling,
    )
    print(bench.format_report(results))
    if args.json is not None:
        try:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=2)
                fh.write("\n")
        except OSError as exc:
            raise CLIError(f"cannot write {args.json}: {exc.strerror or _one_line(exc)}") from None
        print(f"\nresults saved to {args.json}")
    if args.plot is not None:
        try:
            bench.write_plot(results, args.plot)
        except OSError as exc:
            raise CLIError(f"cannot write {args.plot}: {exc.strerror or _one_line(exc)}") from None
        print(f"chart saved to {args.plot}")
    return 0


def _add_bench_parser(subparsers):
    grid = "; ".join(f"{i}: {case.name}" for i, case in enumerate(bench.GRID))
    parser = subparsers.add_parser(
        "bench",
        epilog=BENCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="time fastem against scikit-learn (and daal4py if installed)",
        description=(
            "Time one EM iteration (from the same initial parameters) and a whole default fit "
            "of fastem, scikit-learn and, when installed, daal4py over a grid of problems, "
            "beside this machine's limits (GEMM peak, memory bandwidth, exp rate) measured "
            "at the start; then, when hmmlearn is installed, Baum-Welch iterations of "
            "fastem.GaussianHMM against hmmlearn's (cases hmm:T:D:K:S, S sequences, diag). "
            "Prints Markdown tables; progress goes to stderr. Needs "
            f'scikit-learn ({bench.INSTALL_HINT}). Grid (covariance_type:N:D:K, '
            f'hmm:T:D:K:S): {grid}.'
        ),
    )
    parser.add_argument("--quick", action="store_true", help="divide every case's N by 10")
    parser.add_argument("--no-scaling", action="store_true",
                        help="skip fastem's 1-thread runs (the thread-scaling table)")
    parser.add_argument(
        "--cases", metavar="LIST", default=None,
        help="comma-separated grid indices (from 0), grid case names, any "
             "covariance_type:N:D:K or hmm:T:D:K:S spec, or 'hmm' for the HMM cases "
             "(e.g. 0,diag:1e6:16:16,full:2000:2:3,hmm); default: the whole grid",
    )
    parser.add_argument("--threads", type=_int_at_least(1), default=2,
                        help="threads for every implementation (default: 2)")
    parser.add_argument("--repeats", type=_int_at_least(1), default=3,
                        help="timed repeats per measurement; medians are reported (default: 3)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write every measurement to FILE as JSON")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save a chart of fastem's speed-ups per case (needs matplotlib)")
    parser.set_defaults(handler=_run_bench)


BENCH_EXAMPLES = """\
examples:
  fastem bench --quick                          # the whole grid, N divided by 10
  fastem bench --cases 0,diag:1e6:16:16 --threads 4 --json results.json
  fastem bench --cases hmm --repeats 5            # fastem.GaussianHMM against hmmlearn
  fastem bench --plot speedups.png
"""

MAIN_EXAMPLES = f"""\
examples:
  fastem fit                                    # the built-in 1-D example, against the truth
  fastem fit data.csv -k 3 --covariance-type diag --out model.npz
  fastem fit data.tsv --columns height,weight --json > fit.json
  fastem predict --model model.npz new.csv --proba > proba.csv
  fastem fit gappy.csv --missing em             # empty fields and NaN are missing values
  fastem impute gappy.csv -o filled.csv         # fill them with the fitted mixture
  fastem select data.csv -k 1-6                 # BIC over K and covariance types
  fastem bench --quick

exit status: 0 success; {EXIT_USAGE} bad usage or unreadable input; {EXIT_FIT_FAILED} the fit failed.
Errors are one line on stderr. `fastem COMMAND --help` describes each command.
"""

FIT_EXAMPLES = f"""\
examples:
  fastem fit                                    # built-in example, compared with the truth
  fastem fit data.csv                           # 2 full-covariance components
  fastem fit data.csv -k 4 --covariance-type diag --n-init 3 --seed 1
  fastem fit data.tsv --columns height,weight   # two columns, chosen by header name
  fastem fit data.csv --columns 0,2 --json      # by 0-based index; JSON on stdout
  fastem fit gappy.csv --missing em             # empty fields and NaN are missing values
  fastem fit big.npy --mmap --threads 8 --out model.npz
  fastem fit --plot fit.png                     # the built-in example's histogram and densities
  fastem fit data.csv -k 3 --plot fit.png       # features 0 and 1 by component, with ellipses

input: CSV or TSV text (a first row without numbers is a header; blank lines
and # comments are skipped) or a .npy array; one sample per row. NaN, and
empty fields, are errors unless --missing em makes them missing values.
output: the per-component parameters, then log-likelihood, BIC, AIC, the
iteration count and whether EM converged (with --json: the same as JSON).
exit status: 0 success (also when EM stops at --max-iter: a warning line says
so); {EXIT_USAGE} bad usage or unreadable input; {EXIT_FIT_FAILED} the fit failed.
"""


def _build_parser():
    parser = _ArgumentParser(
        prog="fastem",
        description="Fast, reproducible EM for Gaussian mixtures.",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fastem {fastem.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_fit_parser(subparsers)
    _add_select_parser(subparsers)
    _add_predict_parser(subparsers)
    _add_impute_parser(subparsers)
    _add_bench_parser(subparsers)
    return parser


def main(argv=None):
    """Run the ``fastem`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad usage or unreadable input, 1 for
        a fit that failed; errors are reported as one line on stderr.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return args.handler(args)
    except CLIError as exc:
        print(f"fastem: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FIT_FAILED if isinstance(exc, FitError) else EXIT_USAGE
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
