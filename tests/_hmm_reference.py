"""NumPy references of fastem._hmm, written from the textbook equations.

Plain log-space forward-backward and Viterbi (scipy.special.logsumexp), one
sequence at a time, with T x K x K temporaries: slow and simple, for the tests.
`scaled_long_double` is the rescaled recursion in np.longdouble, the yardstick
of the precision test.
"""
import numpy as np
from scipy.special import logsumexp


def _log(p):
    # log(0) = -inf without the divide-by-zero warning (warnings are errors here).
    with np.errstate(divide="ignore"):
        return np.log(p)


def split(log_frameprob, lengths):
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [log_frameprob[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def forward_backward_sequence(l, startprob, transmat):
    """log p, posteriors (T, K), xi summed over t (K, K) of one sequence, in log space."""
    log_a, log_pi = _log(transmat), _log(startprob)
    t_len, k = l.shape
    log_alpha = np.empty((t_len, k))
    log_beta = np.zeros((t_len, k))
    log_alpha[0] = log_pi + l[0]
    for t in range(1, t_len):
        # log alpha_t(j) = logsumexp_i(log alpha_{t-1}(i) + log A(i, j)) + l_t(j)
        log_alpha[t] = logsumexp(log_alpha[t - 1][:, None] + log_a, axis=0) + l[t]
    for t in range(t_len - 2, -1, -1):
        # log beta_t(i) = logsumexp_j(log A(i, j) + l_{t+1}(j) + log beta_{t+1}(j))
        log_beta[t] = logsumexp(log_a + (l[t + 1] + log_beta[t + 1])[None, :], axis=1)
    log_prob = logsumexp(log_alpha[-1])
    log_gamma = log_alpha + log_beta
    posteriors = np.exp(log_gamma - logsumexp(log_gamma, axis=1, keepdims=True))
    if t_len > 1:
        log_xi = (log_alpha[:-1, :, None] + log_a[None]
                  + (l[1:] + log_beta[1:])[:, None, :] - log_prob)
        xi_sum = np.exp(log_xi).sum(axis=0)
    else:
        xi_sum = np.zeros((k, k))
    return log_prob, posteriors, xi_sum


def forward_backward(log_frameprob, startprob, transmat, lengths):
    """(log_probs, posteriors, start_counts, trans_counts) over all sequences."""
    k = log_frameprob.shape[1]
    log_probs, posteriors = [], []
    start_counts, trans_counts = np.zeros(k), np.zeros((k, k))
    for l in split(log_frameprob, lengths):
        log_prob, gamma, xi_sum = forward_backward_sequence(l, startprob, transmat)
        log_probs.append(log_prob)
        posteriors.append(gamma)
        start_counts += gamma[0]
        trans_counts += xi_sum
    return np.array(log_probs), np.concatenate(posteriors), start_counts, trans_counts


def viterbi(log_frameprob, startprob, transmat, lengths):
    """(log_probs, states): max-product with back-pointers (argmax: the first maximum)."""
    log_a, log_pi = _log(transmat), _log(startprob)
    log_probs, states = [], []
    for l in split(log_frameprob, lengths):
        t_len = len(l)
        delta = log_pi + l[0]
        back = np.zeros((t_len, l.shape[1]), dtype=np.int64)
        for t in range(1, t_len):
            scores = delta[:, None] + log_a          # (from i, to j)
            back[t] = np.argmax(scores, axis=0)
            delta = scores.max(axis=0) + l[t]
        path = np.empty(t_len, dtype=np.int64)
        path[-1] = np.argmax(delta)
        for t in range(t_len - 1, 0, -1):
            path[t - 1] = back[t, path[t]]
        log_probs.append(delta.max())
        states.append(path)
    return np.array(log_probs), np.concatenate(states)


def scaled_long_double(l, startprob, transmat):
    """log p, posteriors and xi sum of one sequence by the rescaled recursion in long double."""
    ld = np.longdouble
    a, pi = transmat.astype(ld), startprob.astype(ld)
    l = l.astype(ld)
    shift = l.max(axis=1, keepdims=True)
    e = np.exp(l - shift)
    t_len, k = l.shape
    alpha = np.empty((t_len, k), dtype=ld)
    scale = np.empty(t_len, dtype=ld)
    row = pi * e[0]
    for t in range(t_len):
        if t:
            row = (alpha[t - 1] @ a) * e[t]
        scale[t] = row.sum()
        alpha[t] = row / scale[t]
    log_prob = (shift[:, 0] + np.log(scale)).sum()
    beta = np.ones(k, dtype=ld)
    gamma = np.empty((t_len, k), dtype=ld)
    gamma[-1] = alpha[-1] / alpha[-1].sum()
    xi = np.zeros((k, k), dtype=ld)
    for t in range(t_len - 2, -1, -1):
        v = e[t + 1] * beta / scale[t + 1]
        xi += np.outer(alpha[t], v)
        beta = a @ v
        g = alpha[t] * beta
        gamma[t] = g / g.sum()
    return log_prob, gamma, xi * a
