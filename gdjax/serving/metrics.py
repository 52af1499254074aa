"""Prometheus metrics of `gdjax serve`: requests, errors, latency, batch sizes, queue depth.

Each server has its own registry (so tests can run several in one process)
and exposes it at `GET /metrics` in Prometheus' text format. The `model`
label only ever holds the names of served models, or "-" for anything else,
so a client cannot grow the label set by asking for made-up models.
"""

from __future__ import annotations

import prometheus_client as prom

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
  def __init__(self, model_names):
    self.model_names = frozenset(model_names)
    self.registry = prom.CollectorRegistry()
    self.requests = prom.Counter(
      "gdjax_serve_requests",
      "Requests answered, by model, endpoint and HTTP status.",
      ["model", "endpoint", "code"],
      registry=self.registry,
    )
    self.errors = prom.Counter(
      "gdjax_serve_errors",
      "Requests answered with a 4xx or 5xx status, by model, endpoint and status.",
      ["model", "endpoint", "code"],
      registry=self.registry,
    )
    self.latency = prom.Histogram(
      "gdjax_serve_request_latency_seconds",
      "Time from a request's arrival to its answer.",
      ["model", "endpoint"],
      buckets=LATENCY_BUCKETS,
      registry=self.registry,
    )
    self.batch_rows = prom.Histogram(
      "gdjax_serve_batch_rows",
      "Rows of each batch the model ran, before padding.",
      ["model"],
      buckets=BATCH_BUCKETS,
      registry=self.registry,
    )
    self.batch_bucket = prom.Histogram(
      "gdjax_serve_batch_padded_rows",
      "Rows of each batch the model ran, after padding to its bucket.",
      ["model"],
      buckets=BATCH_BUCKETS,
      registry=self.registry,
    )
    self.queue_rows = prom.Gauge(
      "gdjax_serve_queue_rows", "Rows waiting for a batch.", ["model"], registry=self.registry
    )
    self.rejected = prom.Counter(
      "gdjax_serve_rejected", "Requests refused with 429 because the queue was full.", ["model"], registry=self.registry
    )
    # The labelled series of each (model label, endpoint, code) `observe` has seen: `labels()` looks them up
    # under a lock on every call. The keys are the server's own names, so the dict stays small.
    self._series: dict[tuple[str, str, int], tuple] = {}

  def label(self, model: str | None) -> str:
    return model if model in self.model_names else "-"

  def observe(self, model: str | None, endpoint: str, code: int, seconds: float) -> None:
    key = (self.label(model), endpoint, code)
    series = self._series.get(key)
    if series is None:
      model, code_text = key[0], str(code)
      errors = self.errors.labels(model, endpoint, code_text) if code >= 400 else None
      series = self.requests.labels(model, endpoint, code_text), errors, self.latency.labels(model, endpoint)
      self._series[key] = series
    requests, errors, latency = series
    requests.inc()
    if errors is not None:
      errors.inc()
    latency.observe(seconds)

  def batch(self, model: str, rows: int, bucket: int) -> None:
    self.batch_rows.labels(model).observe(rows)
    self.batch_bucket.labels(model).observe(bucket)

  def render(self) -> tuple[bytes, str]:
    return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
