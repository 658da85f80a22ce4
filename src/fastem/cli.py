"""The ``fastem`` command line.

``fastem fit [FILE]`` fits a Gaussian mixture to a CSV or ``.npy`` file (or,
without FILE, to the built-in example) and prints the fitted parameters with
the model's log-likelihood, BIC and AIC.

``fastem bench`` times fastem against scikit-learn (and daal4py when it is
installed) over a grid of problems and prints a Markdown table; its logic
lives in ``fastem.bench``.

Each subcommand is registered by one ``_add_<name>_parser`` function whose
parser carries its handler as the ``handler`` default.

User errors (a missing or unreadable file, non-numeric or non-finite data, a
bad option value) are reported as one line on stderr with exit status 2, the
status argparse uses for bad usage; tracebacks are kept for real bugs.
"""
import argparse
import json
import math
import os
import sys
import warnings

import numpy as np

import fastem
from fastem import GaussianMixture, bench
from fastem._covariance import COVARIANCE_NAMES, covariance_matrices
from fastem._sources import row_blocks
from fastem.datasets import motivating_example

__all__ = ["main"]

EXIT_USAGE = 2

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

def load_data(path, mmap=False):
    """Read a data file into a 2-D array, one sample per row.

    Parameters
    ----------
    path : str
        A ``.npy`` file (1-D or 2-D, real numbers), or any other name read as
        comma-separated text: one sample per line, an optional header row
        (recognised when none of its fields is a number), blank lines and
        ``#`` comments ignored.  A single column is one feature.
    mmap : bool, default=False
        Map a ``.npy`` file instead of reading it (``numpy.load(mmap_mode="r")``):
        the fit then reads it from disk once per pass, so it may be larger
        than memory.  Integer files stay integer here; the fit converts them
        block by block.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        float32 for a float32 ``.npy`` file, float64 otherwise.

    Raises
    ------
    CLIError
        If the file cannot be read or parsed, holds no samples, or holds
        NaN or infinite values.
    """
    if path.lower().endswith(".npy"):
        X = _load_npy(path, mmap)
    elif mmap:
        raise CLIError(f"{path}: --mmap needs a .npy file")
    else:
        X = _load_csv(path)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CLIError(f"{path}: no data")
    # Block by block, so that a mapped file is not held in memory at once.
    for start, block in row_blocks(X):
        not_finite = ~np.isfinite(block)
        if not_finite.any():
            row, col = np.argwhere(not_finite)[0]
            raise CLIError(
                f"{path}: data row {start + row + 1}, column {col + 1} is "
                f"{block[row, col]}; fastem needs finite numbers (no NaN or infinity)"
            )
    return X


def _load_npy(path, mmap=False):
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or _one_line(exc)}") from None
    except (ValueError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as a .npy file: {_one_line(exc)}") from None
    if not isinstance(array, np.ndarray):
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
    try:
        with open(path, encoding="utf-8-sig") as fh:
            header_line = _find_header(fh)
            fh.seek(0)
            with warnings.catch_warnings():
                # An empty file is reported below; loadtxt's own warning would duplicate it.
                warnings.simplefilter("ignore", UserWarning)
                try:
                    X = np.loadtxt(
                        fh,
                        delimiter=",",
                        skiprows=0 if header_line is None else header_line + 1,
                        ndmin=2,
                        dtype=np.float64,
                    )
                except ValueError as exc:
                    # loadtxt is fast but its positions ignore skipped lines;
                    # rescan in Python to name the file line that failed.
                    fh.seek(0)
                    raise CLIError(_describe_csv_error(path, fh, header_line, exc)) from None
    except UnicodeDecodeError:
        raise CLIError(f"cannot read {path}: not a UTF-8 text (CSV) file") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or _one_line(exc)}") from None
    return X


def _find_header(fh):
    """Return the 0-based line index of a header row, or None if the first row is data.

    The first non-blank, non-comment line is a header when none of its fields
    parses as a number.  A line that mixes numbers and text is left to the
    parser, which reports it: silently skipping a mistyped first sample would
    hide the mistake.
    """
    for index, line in enumerate(fh):
        content = _content(line)
        if content:
            fields = [field.strip() for field in content.split(",")]
            return None if any(_is_number(field) for field in fields) else index
    return None


def _describe_csv_error(path, fh, header_line, exc):
    n_fields = None
    for index, line in enumerate(fh):
        content = _content(line)
        if not content or index == header_line:
            continue
        fields = [field.strip() for field in content.split(",")]
        if n_fields is None:
            n_fields = len(fields)
        elif len(fields) != n_fields:
            return f"{path} line {index + 1}: expected {n_fields} values, found {len(fields)}"
        for col, field in enumerate(fields):
            if not _is_number(field):
                return (
                    f"{path} line {index + 1}, column {col + 1}: "
                    f"cannot read {field!r} as a number"
                )
    return f"cannot parse {path} as numeric CSV: {_one_line(exc)}"


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
    """Write the fitted parameters to `path` (an ``.npz`` archive, name kept as given).

    Parameters
    ----------
    path : str
    model : fitted GaussianMixture

    Notes
    -----
    Keys: ``weights``, ``means``, ``covariances``, ``precisions_cholesky`` (the
    estimator's arrays as they are), ``covariance_type`` (0-d str array),
    ``lower_bound`` (float), ``n_iter`` (int), ``converged`` (bool).  Every
    entry loads with ``np.load(path)``, no pickling needed.
    """
    # An open file keeps np.savez from appending ".npz" to a name without it.
    with open(path, "wb") as fh:
        np.savez(
            fh,
            weights=model.weights_,
            means=model.means_,
            covariances=model.covariances_,
            precisions_cholesky=model.precisions_cholesky_,
            covariance_type=np.str_(model.covariance_type),
            lower_bound=np.float64(model.lower_bound_),
            n_iter=np.int64(model.n_iter_),
            converged=np.bool_(model.converged_),
        )


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
        X = load_data(args.file, mmap=args.mmap)
        source = args.file + (" (memory-mapped)" if args.mmap else "")
        tol = DEFAULT_TOL if args.tol is None else args.tol
        max_iter = DEFAULT_MAX_ITER if args.max_iter is None else args.max_iter
    _check_out_path(args.out)
    _check_plot_path(args.plot)

    model = GaussianMixture(
        n_components=args.n_components,
        covariance_type=args.covariance_type,
        tol=tol,
        max_iter=max_iter,
        n_init=args.n_init,
        random_state=args.seed,
        n_threads=args.threads,
    )
    # Warnings (a fit that stopped at --max-iter) become one stderr line each;
    # the converged flag in the report says the same.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(X)
        except ValueError as exc:
            raise CLIError(f"cannot fit: {_one_line(exc)}") from None
    for warning in caught:
        print(f"fastem: warning: {_one_line(warning.message)}", file=sys.stderr)

    n, d = X.shape
    threads = fastem.effective_n_threads(args.threads)
    print(f"fastem {fastem.__version__} GaussianMixture fit")
    print(f"data:  {source}: {n} samples x {d} feature{'s' if d != 1 else ''} ({X.dtype})")
    print(
        f"model: {args.n_components} component{'s' if args.n_components != 1 else ''}, "
        f"covariance_type={args.covariance_type}, n_init={args.n_init}, "
        f"max_iter={max_iter}, tol={tol:g}, seed={args.seed}, "
        f"threads={threads}"
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
        try:
            save_model(args.out, model)
        except OSError as exc:
            raise CLIError(f"cannot write {args.out}: {exc.strerror or _one_line(exc)}") from None
        print(f"\nmodel saved to {args.out}")
    if args.plot is not None:
        _write_plot(args.plot, "write_model_plot", model, X)
    return 0


def _check_plot_path(path):
    """--plot: matplotlib and a writable image name, checked before the work."""
    if path is None:
        return
    try:
        from fastem import plotting

        plotting.check_plot_path(path)
    except (ImportError, ValueError) as exc:
        raise CLIError(f"--plot: {_one_line(exc)}") from None


def _write_plot(path, writer, *args):
    """Write a figure with one of fastem.plotting's write_* functions."""
    from fastem import plotting

    try:
        getattr(plotting, writer)(*args, path)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or _one_line(exc)}") from None
    print(f"\nfigure saved to {path}")


def _add_fit_parser(subparsers):
    parser = subparsers.add_parser(
        "fit",
        help="fit a Gaussian mixture to a data file (or the built-in example)",
        description=(
            "Fit a Gaussian mixture by EM and print its parameters, log-likelihood, "
            "BIC and AIC. Without FILE, fit the built-in example (a 1-D mixture of "
            "N(2, 4^2) and N(9, 2^2) with weights 0.6/0.4) and compare with the truth."
        ),
    )
    parser.add_argument(
        "file", nargs="?", metavar="FILE",
        help="CSV (comma-separated, one sample per row, optional header row) or .npy file",
    )
    parser.add_argument("-k", "--n-components", type=_int_at_least(1), default=2,
                        help="number of mixture components (default: 2)")
    parser.add_argument("--covariance-type", choices=COVARIANCE_NAMES, default="full",
                        help="covariance parametrisation (default: full)")
    parser.add_argument("--max-iter", type=_int_at_least(1), default=None,
                        help=f"maximum EM iterations per initialisation (default: {DEFAULT_MAX_ITER}; "
                             f"{BUILTIN_EXAMPLE_MAX_ITER} for the built-in example)")
    parser.add_argument("--tol", type=_non_negative_float, default=None,
                        help=f"convergence threshold on the lower bound's gain per iteration "
                             f"(default: {DEFAULT_TOL:g}; {BUILTIN_EXAMPLE_TOL:g} for the built-in "
                             "example, where EM stops far from the optimum at 1e-3)")
    parser.add_argument("--seed", type=_int_at_least(0), default=0,
                        help="random seed for initialisation and the built-in example (default: 0)")
    parser.add_argument("--n-init", type=_int_at_least(1), default=1,
                        help="number of initialisations; the best is kept (default: 1)")
    parser.add_argument("--threads", type=_int_at_least(1), default=None,
                        help="OpenMP threads (default: OpenMP's limit, capped at the CPUs available)")
    parser.add_argument("--out", metavar="PATH", default=None,
                        help="save the fitted parameters to PATH with numpy.savez")
    parser.add_argument("--n-samples", type=_int_at_least(1), default=None,
                        help=f"sample size of the built-in example (default: {BUILTIN_EXAMPLE_SAMPLES})")
    parser.add_argument("--mmap", action="store_true",
                        help="memory-map a .npy FILE instead of reading it: the fit reads it "
                             "from disk once per pass, so it may be larger than memory")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save a figure of the fit (needs matplotlib: "
                             'pip install "fastem[plot]"): for one feature, the histogram with '
                             "each component's density and the mixture's; for more, features 0 "
                             "and 1 coloured by component with 1 and 2 sigma ellipses")
    parser.set_defaults(handler=_run_fit)


# ------------------------------------------------------------------ bench

def _run_bench(args):
    # Cheap mistakes in the command line first, then what is missing from the environment.
    try:
        cases = bench.select_cases(args.cases, quick=args.quick)
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
    grid = "; ".join(f"{i}: {case.name}" for i, case in enumerate(bench.DEFAULT_GRID))
    parser = subparsers.add_parser(
        "bench",
        help="time fastem against scikit-learn (and daal4py if installed)",
        description=(
            "Time one EM iteration (from the same initial parameters) and a whole default fit "
            "of fastem, scikit-learn and, when installed, daal4py over a grid of problems, "
            "beside this machine's limits (GEMM peak, memory bandwidth, exp rate) measured "
            "at the start. Prints a Markdown table; progress goes to stderr. Needs "
            f'scikit-learn ({bench.INSTALL_HINT}). Grid (covariance_type:N:D:K): {grid}.'
        ),
    )
    parser.add_argument("--quick", action="store_true", help="divide every case's N by 10")
    parser.add_argument(
        "--cases", metavar="LIST", default=None,
        help="comma-separated grid indices (from 0), grid case names, or any "
             "covariance_type:N:D:K spec (e.g. 0,diag:1e6:16:16,full:2000:2:3); default: the whole grid",
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


def _build_parser():
    parser = _ArgumentParser(
        prog="fastem",
        description="Fast, reproducible EM for Gaussian mixtures.",
    )
    parser.add_argument("--version", action="version", version=f"fastem {fastem.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_fit_parser(subparsers)
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
        Exit status: 0 on success, 2 for a usage or data error (reported as
        one line on stderr).
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
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
