"""Print the figures of issue 9's statistical tests, for the lead to quote.

Runs tests/test_missing.py's ``missing_data_experiment``: a correlated mixture
(D=6, K=3, full covariances; each covariance a random rotation of variances in
[0.05, 2]), three training sets of 2000 rows, 3000 complete held-out rows,
every fit started from the true mixture, with 10 %, 20 % and 30 % of the
values removed at random, over several mixtures (seeds).  Prints how far the
exact-EM fit's parameters are from the complete-data fit's (and the
mean-filled fit's, for scale), the held-out mean log-likelihood of the four
fits (complete data, exact EM with gaps, complete rows only, mean-filled), and
the RMSE of ``impute`` on the removed values against column means.

Usage, from the repository root (scikit-learn and SciPy as for the tests):

    python benchmarks/missing_quality.py [N_SEEDS]
"""
import os
import sys
import warnings

n_seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
# The experiment lives with the tests that assert on it.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))

import numpy as np  # noqa: E402

from test_missing import missing_data_experiment  # noqa: E402

warnings.simplefilter("ignore")
FRACTIONS = (0.1, 0.2, 0.3)
rows = [missing_data_experiment(np.random.default_rng([seed, round(100 * f)]), f)
        for seed in range(n_seeds) for f in FRACTIONS]

print("Correlated mixture D=6 K=3 (full), 3 x 2000 training rows (figures: mean over the three),"
      f" 3000 complete held-out rows, fits started from the truth; {n_seeds} mixtures.\n")
header = (f"{'seed':>4} {'miss':>4} {'compl.rows':>10} | held-out:{'complete':>9} {'em':>8} "
          f"{'rows-only':>9} {'mean-fill':>9} | {'gap mu em':>9} {'mfill':>6} {'gap w em':>8} "
          f"{'gap cov em':>10} {'mfill':>6} | {'RMSE imp':>8} {'col mean':>8}")
print(header)
print("-" * len(header))
for i, r in enumerate(rows):
    h, g, m = r["held_out"], r["gaps_em"], r["gaps_mean_filled"]
    print(f"{i // 3:>4} {r['fraction']:>4.0%} {r['complete_rows']:>10.0f} | {h['complete']:>18.4f} "
          f"{h['em']:>8.4f} {h['rows_only']:>9.4f} {h['mean_filled']:>9.4f} | "
          f"{g['means']:>9.4f} {m['means']:>6.2f} {g['weights']:>8.4f} {g['covariances']:>10.4f} "
          f"{m['covariances']:>6.2f} | {r['rmse_impute']:>8.4f} {r['rmse_column_mean']:>8.4f}")

print(f"\nSummary per fraction over {n_seeds} mixtures (mean; [worst]):")
for fraction in FRACTIONS:
    sel = [r for r in rows if r["fraction"] == fraction]

    def col(f):
        return np.array([f(r) for r in sel])

    d_rows = col(lambda r: r["held_out"]["em"] - r["held_out"]["rows_only"])
    d_mean = col(lambda r: r["held_out"]["em"] - r["held_out"]["mean_filled"])
    d_full = col(lambda r: r["held_out"]["complete"] - r["held_out"]["em"])
    mu = col(lambda r: r["gaps_em"]["means"])
    mu_worst = col(lambda r: r["worst_gaps_em"]["means"])
    mu_mf = col(lambda r: r["gaps_mean_filled"]["means"])
    cov = col(lambda r: r["gaps_em"]["covariances"])
    cov_worst = col(lambda r: r["worst_gaps_em"]["covariances"])
    w_worst = col(lambda r: r["worst_gaps_em"]["weights"])
    rmse = col(lambda r: r["rmse_impute"])
    rmse_mean = col(lambda r: r["rmse_column_mean"])
    n_complete = np.mean(col(lambda r: r["complete_rows"]))
    em_held_out = np.mean(col(lambda r: r["held_out"]["em"]))
    print(f"  {fraction:.0%} missing ({n_complete:.0f} of 2000 rows complete):\n"
          f"    held-out log-lik. per row: exact EM {em_held_out:.4f}, "
          f"gain over complete-rows-only {d_rows.mean():+.4f} [min {d_rows.min():+.4f}], "
          f"over mean-filling {d_mean.mean():+.4f} [min {d_mean.min():+.4f}], "
          f"short of the complete-data fit by {d_full.mean():.4f}\n"
          f"    parameter gap to the complete-data fit: means {mu.mean():.3f} [worst replicate "
          f"{mu_worst.max():.3f}] (mean-filled fit {mu_mf.mean():.2f}), covariances (rel.) "
          f"{cov.mean():.3f} [{cov_worst.max():.3f}], weights [worst {w_worst.max():.4f}]\n"
          f"    impute RMSE {rmse.mean():.3f} vs column mean {rmse_mean.mean():.3f} "
          f"(ratio {np.mean(rmse / rmse_mean):.3f}, worst {np.max(rmse / rmse_mean):.3f})")
