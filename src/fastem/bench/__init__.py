"""``fastem bench``: fastem against scikit-learn (and daal4py when installed), beside this machine's limits.

For every case of a grid of (covariance_type, N, D, K) the benchmark measures,
in one process and with the same thread count for everyone:

- the time of one EM iteration of each implementation, all started from the
  same initial parameters (the statistics of a random partition of X);
- the time of a whole ``fit`` with default settings (k-means initialisation,
  ``tol=1e-3``, ``random_state=0``) for fastem and scikit-learn;
- the peak NumPy memory each whole ``fit`` allocates beyond X (tracemalloc);
- the machine's limit for one iteration: the largest of the times needed to
  read X once, to do the floating-point work no pass can avoid at the
  measured GEMM peak, and to evaluate the exps and logs no pass can avoid at
  the rates of the fastest vectorised exp and log measured (NumPy's or
  fastem's own);
- issue 14's targets per case, met or missed; the k-means initialisation of a
  default fit in fastem iterations; fastem's 1 -> n thread scaling with the
  steal time during each measurement.

One module per job:

- ``cases``: the cases, the default grid, ``--cases`` parsing, their data and
  the shared starting point;
- ``probes``: the machine's limits (GEMM peak, bandwidth, exp and log
  rates), the flop, exp and log counts and the limit, the steal time, whether
  ``perf stat`` can count, and the environment and thread pools reported;
- ``runners``: the fastem, scikit-learn and daal4py runners and their timing
  (iterations, whole fits, the initialisation);
- ``run``: :func:`run_bench`, every case through every runner, the targets;
- ``report``: the progress lines, the Markdown report and the chart;
- ``requirements``: the packages the benchmark needs, and :class:`BenchError`;
- ``hmm``: the hidden Markov model cases (fastem's GaussianHMM against
  hmmlearn's, when hmmlearn is installed): their data, shared start,
  runners and limit, with a latency term for a sequence's chain of steps.

:data:`GRID` is what ``fastem bench`` runs by default: the mixtures'
:data:`DEFAULT_GRID`, then :data:`HMM_GRID`.

The command line (``fastem.cli``) parses the options and calls
:func:`select_cases`, :func:`check_requirements`, :func:`run_bench`,
:func:`format_report` and :func:`write_plot`; everything is plain Python and
NumPy, so the package can be imported without scikit-learn, matplotlib or
daal4py, which are only loaded when a benchmark runs or a chart is drawn.
"""
from fastem.bench.cases import DEFAULT_GRID, Case, make_data, partition_start, select_cases
from fastem.bench.hmm import HMM_GRID, HMMCase, hmm_iteration_limit, make_hmm_data
from fastem.bench.probes import flop_count, iteration_limit, measure_machine, transcendental_count
from fastem.bench.report import format_report, table_columns, write_plot
from fastem.bench.requirements import INSTALL_HINT, BenchError, check_requirements
from fastem.bench.run import run_bench

GRID = DEFAULT_GRID + HMM_GRID

__all__ = [
    "BenchError",
    "Case",
    "DEFAULT_GRID",
    "GRID",
    "HMMCase",
    "HMM_GRID",
    "INSTALL_HINT",
    "check_requirements",
    "flop_count",
    "format_report",
    "hmm_iteration_limit",
    "iteration_limit",
    "make_data",
    "make_hmm_data",
    "measure_machine",
    "partition_start",
    "run_bench",
    "select_cases",
    "table_columns",
    "transcendental_count",
    "write_plot",
]
