"""FID, KID, precision/recall and classifier score against SciPy, NumPy and limits."""

import numpy as np
import pytest
import scipy.linalg

from gdjax.evaluators import gan_metrics


def scipy_frechet(mu1, s1, mu2, s2):
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_gaussian(rng, dim):
  a = rng.normal(size=(dim, dim))
  return rng.normal(size=dim), a @ a.T / dim + 0.1 * np.eye(dim)


class TestFrechetDistance:
  @pytest.mark.parametrize("dim", [2, 16, 64])
  def test_matches_scipy_sqrtm_formula(self, dim):
    rng = np.random.default_rng(dim)
    (mu1, s1), (mu2, s2) = random_gaussian(rng, dim), random_gaussian(rng, dim)
    expected = scipy_frechet(mu1, s1, mu2, s2)
    got = float(gan_metrics.frechet_distance(mu1, s1, mu2, s2))
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-3)

  def test_one_dimensional_closed_form(self):
    # For 1-D Gaussians: (m1 - m2)^2 + (sigma1 - sigma2)^2.
    got = gan_metrics.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]]))
    assert float(got) == pytest.approx(4.0 + 1.0, rel=1e-5)

  def test_set_against_itself_is_zero(self):
    features = np.random.default_rng(0).normal(size=(2000, 32)) @ np.random.default_rng(1).normal(size=(32, 32))
    stats = gan_metrics.GaussianStats(32)
    for chunk in np.array_split(features, 7):  # Streaming gives the same statistics.
      stats.update(chunk)
    mean, cov = stats.mean_and_covariance()
    np.testing.assert_allclose(mean, features.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cov, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-9)
    assert abs(float(gan_metrics.frechet_distance(mean, cov, mean, cov))) < 1e-2 * np.trace(cov) / 32


class TestKID:
  def numpy_mmd(self, x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3
    m = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()

  def test_single_full_subset_matches_numpy(self):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 8)), rng.normal(loc=0.5, size=(50, 8))
    mean, std = gan_metrics.kernel_inception_distance(x, y, num_subsets=1, subset_size=50)
    assert float(mean) == pytest.approx(self.numpy_mmd(x, y), rel=1e-4)
    assert float(std) == 0.0

  def test_same_distribution_near_zero_different_positive(self):
    rng = np.random.default_rng(1)
    x, x2, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng.normal(loc=1.0, size=(400, 8))
    same, _ = gan_metrics.kernel_inception_distance(x, x2, num_subsets=10, subset_size=200)
    different, _ = gan_metrics.kernel_inception_distance(x, y, num_subsets=10, subset_size=200)
    assert abs(float(same)) < 0.05 < float(different)


class TestPrecisionRecall:
  def test_identical_sets(self):
    x = np.random.default_rng(0).normal(size=(300, 4))
    precision, recall = gan_metrics.precision_recall(x, x, k=3)
    assert float(precision) == 1.0 and float(recall) == 1.0

  def test_mode_collapse_has_precision_but_no_recall(self):
    rng = np.random.default_rng(1)
    real = np.concatenate([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 50.0])
    fake = rng.normal(size=(400, 2)) * 0.5  # Covers one of the two modes only.
    precision, recall = gan_metrics.precision_recall(real, fake, k=3)
    assert float(precision) > 0.9
    assert 0.3 < float(recall) < 0.7

  def test_knn_radii_against_brute_force(self):
    x = np.random.default_rng(2).normal(size=(50, 3))
    distances = ((x[:, None] - x[None]) ** 2).sum(-1)
    expected = np.sort(distances, axis=1)[:, 3]
    np.testing.assert_allclose(gan_metrics.knn_radii(x, 3, chunk=16), expected, rtol=1e-4, atol=1e-5)


class TestClassifierScore:
  def test_limits(self):
    uniform = np.full((100, 10), 0.1)
    mean, _ = gan_metrics.classifier_score(uniform, num_splits=2)
    assert float(mean) == pytest.approx(1.0, rel=1e-5)
    confident_and_balanced = np.eye(10)[np.arange(100) % 10]
    mean, _ = gan_metrics.classifier_score(confident_and_balanced, num_splits=2)
    assert float(mean) == pytest.approx(10.0, rel=1e-4)

  def test_matches_numpy(self):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(60, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    marginal = p.mean(0)
    expected = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1)))
    mean, _ = gan_metrics.classifier_score(p, num_splits=1)
    assert float(mean) == pytest.approx(expected, rel=1e-4)
