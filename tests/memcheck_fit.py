"""A short fit of every covariance type, both dtypes, both kernel paths and the
engine's error path: the script the README's valgrind command runs (not a test)."""
import warnings, numpy as np, fastem
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
X = rng.normal(size=(3000, 6)); X[::3] += 5
for cov in ["full", "tied", "diag", "spherical"]:
    for dt in (np.float64, np.float32):
        gm = fastem.GaussianMixture(3, covariance_type=cov, max_iter=5, n_threads=2, random_state=0).fit(X.astype(dt))
        gm.predict_proba(X); gm.score_samples(X[:7])
X2 = rng.normal(size=(500, 2))
fastem.GaussianMixture(2, max_iter=3, random_state=0).fit(X2)        # D < 8: the column path
try:
    fastem.GaussianMixture(2, reg_covar=0.0).fit(np.ones((50, 3)))   # the engine's error path
except ValueError as e:
    print("raised", type(e).__name__)
print("done")
