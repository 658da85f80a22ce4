"""TEMPORARY: the engine door of fastem._em, emulated on _kernels.accumulate.

Deleted when the compiled door lands (lanes are not carried across calls here).
"""
import numpy as np

from fastem._em import chunk_rows
from fastem._kernels import Assign, Stats, accumulate as _kernel_accumulate

_STATS = {"none": Stats.STATS_NONE, "full": Stats.STATS_FULL, "tied": Stats.STATS_TIED,
          "diag": Stats.STATS_DIAG}


def statistics_size(statistic, n_components, n_features):
    k, d = n_components, n_features
    second = {"none": 0, "full": k * d * d, "tied": d * d, "diag": k * d}[statistic]
    return 1 + k + k * d + second


def lane_count(n_stats):
    return 1


def reduce_lanes(lanes):
    return lanes.sum(axis=0)


def accumulate(X, sample_weight, lanes, *, statistic, centres, first_chunk=0, model=None,
               responsibilities=None, tied_centre=None, n_threads=1):
    d = centres.shape[1]
    X = np.ascontiguousarray(X[:, :d])
    kw = dict(tied_shift=tied_centre, chunk_rows=chunk_rows(d), n_threads=n_threads)
    if model is not None:
        lanes[0] += model.accumulate(X, sample_weight, n_threads)
    elif responsibilities is not None:
        out = _kernel_accumulate(X, sample_weight, Assign.ASSIGN_GIVEN, _STATS[statistic], centres,
                                 given_resp=responsibilities, **kw)
    else:
        out = _kernel_accumulate(X, sample_weight, Assign.ASSIGN_NEAREST, _STATS[statistic], centres,
                                 **kw)
    if model is None:
        flat = np.concatenate([[out[0]], out[1], out[2].ravel()]
                              + ([] if out[3] is None else [out[3].ravel()]))
        lanes[0] += flat
    n = X.shape[0]
    return 0 if n == 0 else (n - 1) // kw["chunk_rows"] + 1
