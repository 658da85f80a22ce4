"""Test-only hooks into compiled helpers."""
import numpy as np
from numpy.typing import ArrayLike, NDArray

def _out_pointer_fills(array: NDArray[np.float64], value: float) -> NDArray[np.float64]: ...
def _vector_exp_log(
    x: ArrayLike, array_functions: bool = ...
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def _vector_log1p(x: ArrayLike, array_function: bool = ...) -> NDArray[np.float64]: ...
def _normalise_pair(
    first: ArrayLike, second: ArrayLike, weight: ArrayLike | None = ..., only_sum: bool = ...
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | float]: ...
def _column_helpers_both_ways(
    a: ArrayLike, b: ArrayLike, c: ArrayLike, f: float, m: float
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]: ...
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
