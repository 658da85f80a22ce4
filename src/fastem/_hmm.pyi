"""Forward-backward and Viterbi for hidden Markov models (fastem._hmm), nogil, OpenMP over sequences."""
from typing import Final, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

UNDERFLOW_MESSAGE: Final[str]
UNDERFLOW_STATUS: Final[int]
IMPLEMENTATIONS: Final[dict[str, int]]

class ForwardBackward(NamedTuple):
    log_probs: NDArray[np.float64]
    posteriors: NDArray[np.float64] | None
    start_counts: NDArray[np.float64] | None
    trans_counts: NDArray[np.float64] | None

class Viterbi(NamedTuple):
    log_probs: NDArray[np.float64]
    states: NDArray[np.int64]

def forward_backward(
    log_frameprob: ArrayLike,
    startprob: ArrayLike,
    transmat: ArrayLike,
    lengths: ArrayLike | None,
    *,
    implementation: Literal["log", "scaling"] = ...,
    want_posteriors: bool = ...,
    n_threads: int = ...,
) -> ForwardBackward: ...
def viterbi(
    log_frameprob: ArrayLike,
    startprob: ArrayLike,
    transmat: ArrayLike,
    lengths: ArrayLike | None,
    n_threads: int = ...,
) -> Viterbi: ...
