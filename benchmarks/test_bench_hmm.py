"""fastem's GaussianHMM against hmmlearn's: one Baum-Welch iteration, one sequence and many.

Each benchmark group ("Baum-Welch iteration, 1 sequence", "... 20 sequences")
holds the two implementations on the same rows and from the same start
(``fastem.bench.hmm``: a sticky chain with diagonal Gaussian emissions, and
a start that favours no state); compare within a group.  Nothing is
asserted about the times.  Skipped when hmmlearn is not installed.

One iteration: the model is first fitted for one iteration from the shared
start, then each timed call is ``fit`` with ``n_iter=1`` and
``init_params=""``, one E-step and M-step from the current parameters (the
HMM counterpart of the mixtures' ``warm_start``).  ``fastem bench --cases
hmm`` times the full-size cases (T = 2e5) beside the machine's limit; these
are a tenth of that, so the suite stays short.
"""
import pytest

import fastem
from fastem.bench.hmm import HMM_GRID, HMMRunner, hmm_start, make_hmm_data

hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")

IMPLEMENTATIONS = ["fastem", "hmmlearn"]
# T = 2e4: one hmmlearn iteration takes tens of milliseconds.
SCALE = 0.1


@pytest.fixture(scope="module", params=HMM_GRID, ids=lambda case: case.scaled(SCALE).name)
def hmm_problem(request):
    """(case, X, start) for one of ``fastem bench``'s HMM cases, scaled; built once per module."""
    case = request.param.scaled(SCALE)
    X, _ = make_hmm_data(case)
    return case, X, hmm_start(X, case.n_components)


def _runner(implementation, threads):
    if implementation == "fastem":
        return HMMRunner("fastem", fastem.GaussianHMM, n_threads=threads)
    return HMMRunner("hmmlearn", hmmlearn_hmm.GaussianHMM)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_baum_welch_iteration(benchmark, hmm_problem, implementation, threads):
    case, X, start = hmm_problem
    runner = _runner(implementation, threads)
    runner.em(X, case, start, 1)
    model = runner.fitted[1]
    lengths = case.lengths()
    plural = "s" if case.n_sequences > 1 else ""
    benchmark.group = f"Baum-Welch iteration, {case.n_sequences} sequence{plural}"
    benchmark.extra_info.update(case=case.name, threads=threads)
    benchmark(model.fit, X, lengths)
    assert model.monitor_.iter == 1
