"""The Python layer's one door into the engine (fastem._em): model arrays, passes into lanes, M-step."""
import enum
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

class Status(enum.IntEnum):
    STATUS_OK = 0
    STATUS_NO_MEMORY = -1
    STATUS_BAD_ARGUMENT = -2
    STATUS_ILL_DEFINED = -3
    STATUS_NOT_FINITE = -4

COVARIANCE_CODES: Final[dict[str, int]]
STATISTIC_CODES: Final[dict[str, int]]
ILL_DEFINED_MESSAGE: Final[str]
ILL_DEFINED_FLOAT32_HINT: Final[str]
NOT_FINITE_MESSAGE: Final[str]

def raise_for_status(status: int, dtype: np.dtype | type | None = ...) -> None: ...
def chunk_rows(n_features: int) -> int: ...
def covariance_shape(code: int, k: int, d: int) -> tuple[int, ...]: ...
def split_statistics(
    stats: NDArray[np.float64], stat: int, k: int, d: int
) -> tuple[float, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]: ...
def normalised_weights(counts_floor: ArrayLike) -> NDArray[np.float64]: ...
def responsibilities(log_dens: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def sum_weights(
    sample_weight: NDArray[np.float64] | None, n_rows: int, start: float = ...
) -> float: ...
def precision_factors(covariances: ArrayLike, covariance_type: str) -> NDArray[np.float64]: ...
def m_step_from(
    stats: NDArray[np.float64]
    | tuple[float, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None],
    shift_means: ArrayLike,
    tied_shift: ArrayLike | None,
    covariance_type: str,
    reg_covar: float,
    dtype: np.dtype | type | None = ...,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]: ...

class ModelArrays:
    weights: NDArray[np.float64]
    means: NDArray[np.float64]
    covariances: NDArray[np.float64]
    precisions_cholesky: NDArray[np.float64]
    covariance_type: str
    def __init__(
        self,
        covariance_type: str,
        weights: ArrayLike,
        means: ArrayLike,
        precisions_cholesky: ArrayLike,
        covariances: ArrayLike | None = ...,
    ) -> None: ...
    def em_step(
        self,
        X: NDArray[np.float32] | NDArray[np.float64],
        sample_weight: NDArray[np.float64] | None,
        total: float,
        reg_covar: float,
        n_threads: int,
    ) -> float: ...
    def accumulate(
        self,
        X: NDArray[np.float32] | NDArray[np.float64],
        sample_weight: NDArray[np.float64] | None = ...,
        n_threads: int = ...,
    ) -> NDArray[np.float64]: ...
    def log_densities(
        self, X: NDArray[np.float32] | NDArray[np.float64], n_threads: int = ...
    ) -> NDArray[np.float64]: ...
    def m_step(self, stats: ArrayLike, reg_covar: float, dtype: DTypeLike | None = None) -> None: ...
    def tied_centre(self) -> NDArray[np.float64]: ...
    def score(
        self,
        X: NDArray[np.float32] | NDArray[np.float64],
        want_log_prob: bool = ...,
        want_resp: bool = ...,
        want_labels: bool = ...,
        n_threads: int = ...,
    ) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None, NDArray[np.int64] | None]: ...

def statistics_size(statistic: str, n_components: int, n_features: int) -> int: ...
def lane_count(n_stats: int) -> int: ...
def lane_shape(n_stats: int) -> tuple[int, int]: ...
def accumulate(
    X: NDArray[np.float32] | NDArray[np.float64],
    sample_weight: NDArray[np.float64] | None,
    lanes: NDArray[np.float64],
    *,
    statistic: str,
    centres: ArrayLike,
    first_chunk: int = ...,
    model: ModelArrays | None = ...,
    responsibilities: NDArray[np.float64] | None = ...,
    tied_centre: ArrayLike | None = ...,
    n_threads: int = ...,
) -> int: ...
def reduce_lanes(lanes: NDArray[np.float64], n_stats: int | None = ...) -> NDArray[np.float64]: ...
