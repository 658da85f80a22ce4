"""Fused nogil kernels: one pass over X per EM (or Lloyd) iteration."""
import enum

import numpy as np
from numpy.typing import ArrayLike, NDArray

class Assign(enum.IntEnum):
    ASSIGN_FULL = 0
    ASSIGN_TIED = 1
    ASSIGN_DIAG = 2
    ASSIGN_NEAREST = 3
    ASSIGN_GIVEN = 4

class Stats(enum.IntEnum):
    STATS_NONE = 0
    STATS_FULL = 1
    STATS_TIED = 2
    STATS_DIAG = 3

def accumulate(
    X: NDArray[np.float32] | NDArray[np.float64],
    sample_weight: ArrayLike | None,
    assign: int,
    stats: int,
    means: ArrayLike,
    precision_factor: ArrayLike | None = ...,
    log_norm: ArrayLike | None = ...,
    whitened_means: ArrayLike | None = ...,
    tied_shift: ArrayLike | None = ...,
    given_resp: ArrayLike | None = ...,
    chunk_rows: int | None = ...,
    n_threads: int = ...,
) -> tuple[float, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]: ...
def score(
    X: NDArray[np.float32] | NDArray[np.float64],
    assign: int,
    means: ArrayLike,
    precision_factor: ArrayLike | None = ...,
    log_norm: ArrayLike | None = ...,
    whitened_means: ArrayLike | None = ...,
    want_log_prob: bool = ...,
    want_resp: bool = ...,
    want_labels: bool = ...,
    chunk_rows: int | None = ...,
    n_threads: int = ...,
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None, NDArray[np.int64] | None]: ...
def simd_level() -> str: ...
