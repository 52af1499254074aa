"""Class-balanced subsets of a labelled split: learning curves, and training from a few labels.

A learning curve trains on subsets of growing size (Ng & Jordan 2001), and a
semi-supervised model keeps the labels of a few examples per class (Salimans
et al. 2016, 100 labels of MNIST). Both want the same thing: `size` examples,
as evenly spread over the classes as the split allows, drawn at random but
fixed by a seed, so that every process, device count and resumed run trains on
the same examples. `class_balanced_subset` is that, as a pure NumPy function.
"""

from __future__ import annotations

import numpy as np


def class_quotas(available: np.ndarray, size: int, class_order: np.ndarray) -> np.ndarray:
  """How many examples each class gives to a subset of `size`: as equal as the classes' sizes allow.

  Every class gets `size // K` (K classes) and the first `size % K` classes
  of `class_order` one more. A class with fewer examples than its share
  gives all it has, and the shortfall is shared out the same way among the
  others (water-filling), so the counts differ by at most one wherever no
  class runs out.

  Args:
    available: `[K]` examples per class.
    size: the subset size, at most `available.sum()`.
    class_order: a permutation of `range(K)`: who gets the remainder first.

  Returns:
    `[K]` int64 quotas summing to `size`.
  """
  available = np.asarray(available, np.int64)
  quotas = np.zeros_like(available)
  remaining, open_classes = int(size), [int(c) for c in class_order if available[c] > 0]
  while remaining and open_classes:
    share = remaining // len(open_classes)
    short = [c for c in open_classes if available[c] - quotas[c] <= share]
    if short:  # These give everything they have; the rest is shared again.
      for c in short:
        remaining -= int(available[c] - quotas[c])
        quotas[c] = available[c]
      open_classes = [c for c in open_classes if c not in short]
      continue
    quotas[open_classes] += share
    for c in open_classes[: remaining - share * len(open_classes)]:
      quotas[c] += 1
    remaining = 0
  return quotas


def class_balanced_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
  """Indices of `size` examples of `labels`, spread evenly over the classes, chosen at random under `seed`.

  Each class present in `labels` gets `size // K` examples and `size % K`
  classes (chosen under `seed`) one more; where a class has too few, it
  gives all it has and the others make up the difference (`class_quotas`).
  Within a class the examples are a uniform draw without replacement.

  The draw depends only on `labels`, `size` and `seed`, never on devices or
  processes. For one seed the subsets are nested while no class runs out:
  the subset of size n is part of the subset of any larger size, because
  each class's examples are taken in one seeded order and the remainder goes
  to the classes in one seeded order.

  References:
    Ng & Jordan, "On Discriminative vs. Generative Classifiers: A comparison
    of logistic regression and naive Bayes", NeurIPS 2001 (learning curves
    over random training subsets).

  Args:
    labels: `[N]` integer class labels of the whole split.
    size: how many examples, 1 <= size <= N.
    seed: any non-negative integer.

  Returns:
    `[size]` int64 indices into `labels`, sorted.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be one-dimensional; got shape {labels.shape}.")
  if not 1 <= size <= len(labels):
    raise ValueError(f"A subset must hold between 1 and {len(labels)} examples (the split's size); got {size}.")
  if size == len(labels):
    return np.arange(len(labels), dtype=np.int64)
  classes, counts = np.unique(labels, return_counts=True)
  rng = np.random.default_rng([int(seed), 0x5EB5E7])  # Fixed second word: this function's own stream.
  class_order = rng.permutation(len(classes))
  quotas = class_quotas(counts, size, class_order)
  chosen = []
  for k, label in enumerate(classes):
    members = np.flatnonzero(labels == label)
    chosen.append(members[rng.permutation(len(members))[: quotas[k]]])
  return np.sort(np.concatenate(chosen)).astype(np.int64)
