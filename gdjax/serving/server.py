"""`gdjax serve`: exported models over HTTP, on the Open Inference Protocol v2 (KServe, MLServer, Triton).

Built on FastAPI and uvicorn; docs/serving.md says why these rather than
Seldon's MLServer or KServe's `ModelServer`. The V2 JSON is read and
written here rather than by FastAPI's pydantic models, so that every
refusal carries a message about the tensor contract (and a pydantic
model of a 100,000-deep list never gets built); the routes are plain
Starlette routes of the FastAPI app, which skips FastAPI's per-request
dependency layer. Endpoints:

  GET  /v2/health/live, /v2/health/ready     live at once; ready once every model is loaded and every bucket compiled
  GET  /v2/models/{name}[/versions/1]        V2 metadata: the tensor contract, plus gdjax's export metadata
  GET  /v2/models/{name}/ready
  POST /v2/models/{name}[/versions/1]/infer  V2 JSON tensors in and out
  POST /models/{name}/classify               convenience: one greyscale PNG in, label and probabilities out
  GET  /models/{name}/samples.png?seed=S&num=N[&labels=0,3]   convenience: a PNG grid of samples
  GET  /metrics                              Prometheus

A bearer token (`--token` or $GDJAX_SERVE_TOKEN), when set, guards the
inference endpoints; health, metadata and metrics stay open, as probes and
scrapers need them. TLS belongs to the ingress in front of the server.

Every refusal is a JSON `{"error": message}` with a 4xx status; a failure
of the server itself is a 500 whose message says nothing of its internals.
On SIGTERM uvicorn stops accepting connections and answers the requests in
flight; then the batchers stop and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import logging
import signal
import time

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.exceptions import HTTPException

from gdjax.errors import GdjaxError
from gdjax.serving import artifact, batching, validation
from gdjax.serving.metrics import ServeMetrics
from gdjax.serving.runtime import ServedModel, ServeOptions, load_models
from gdjax.serving.validation import BadRequest

log = logging.getLogger("gdjax.serve")
WITHDRAW = "gdjax_withdraw"  # The key, in an ASGI scope's state, of the request's `Batcher.announce` withdrawal.


def error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
  return JSONResponse({"error": message}, status_code=status, headers=headers)


class Admission:
  """ASGI middleware in front of everything: sheds load and refuses large bodies before a byte is parsed.

  `shed(model, scope)` returns a response (a 429) when the request's model
  (`model_of(scope)`) has no room in its queue: under overload a refusal then costs no body read, no
  JSON and no routing, which keeps the server answering faster than the
  requests arrive. A body over `limit` bytes gets 413 (by its Content-Length,
  or counted as it arrives).
  """

  def __init__(self, app, limit: int, model_of, shed):
    self.app, self.limit, self.model_of, self.shed = app, limit, model_of, shed

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    model = self.model_of(scope)
    if model is None or model.batcher is None:
      return await self.admit(scope, receive, send)
    refusal = self.shed(model, scope)
    if refusal is not None:
      return await refusal(scope, receive, send)
    # From here until `submit`, the batcher knows this request is coming (see `batching.Batcher.announce`).
    withdraw = model.batcher.announce()
    scope.setdefault("state", {})[WITHDRAW] = withdraw
    model.in_flight += 1
    try:
      return await self.admit(scope, receive, send)
    finally:
      model.in_flight -= 1
      withdraw()

  async def admit(self, scope, receive, send):
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
      return await self.too_large(scope, receive, send)
    chunks, size, more = [], 0, True
    while more:
      message = await receive()
      if message["type"] == "http.disconnect":
        return
      chunks.append(message.get("body", b""))
      size += len(chunks[-1])
      more = message.get("more_body", False)
      if size > self.limit:
        return await self.too_large(scope, receive, send)
    body = b"".join(chunks)
    replayed = False

    async def replay():
      nonlocal replayed
      if not replayed:
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}
      return await receive()

    return await self.app(scope, replay, send)

  def too_large(self, scope, receive, send):
    return error(f"The body exceeds this server's limit of {self.limit} bytes (--max_body_bytes).", 413)(
      scope, receive, send
    )


def create_app(model_dirs, options: ServeOptions) -> FastAPI:
  """The ASGI app serving `model_dirs`; the models load here (errors raise), and warm up once it starts."""
  models = load_models(model_dirs, options)
  metrics = ServeMetrics(models)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    for model in models.values():
      model.start(metrics)
    warm_up = asyncio.get_running_loop().run_in_executor(None, _warm_up_all, list(models.values()))
    yield
    await asyncio.gather(warm_up, return_exceptions=True)
    for model in models.values():
      await model.batcher.stop()

  async def http_error(request, exc):
    return error(str(exc.detail), exc.status_code, getattr(exc, "headers", None))

  async def internal_error(request, exc):
    log.exception("internal error on %s", request.url.path)
    return error("The server failed on this request; it is logged. The server is still up.", 500)

  def model_of(scope) -> ServedModel | None:
    """The model an inference request (POST .../infer or .../classify) is for, else None."""
    parts = scope["path"].split("/")
    if scope["method"] != "POST":
      return None
    if parts[1:3] == ["v2", "models"] and len(parts) in (5, 7) and parts[-1] == "infer":
      return models.get(parts[3])  # /v2/models/{name}[/versions/{version}]/infer
    if len(parts) == 4 and parts[1] == "models" and parts[3] == "classify":
      return models.get(parts[2])  # /models/{name}/classify
    return None

  def shed(model: ServedModel, scope) -> Response | None:
    """A 429 when `model` has `max_queue_rows` requests in flight or rows queued (see `Admission`), else None.

    Requests in flight (from arrival to answer) are bounded as well as queued rows: when the CPU, not the
    model, is what is short (parsing and answering), the queue stays short while requests wait for the
    event loop; bounding them keeps the latency of what is taken bounded there too.
    """
    try:
      if model.in_flight >= options.max_queue_rows:
        raise batching.QueueFull(
          f"{model.in_flight} requests for {model.name!r} are in flight, the bound (--max_queue_rows); retry later."
        )
      model.batcher.check_room()
    except batching.QueueFull as e:
      metrics.rejected.labels(model.name).inc()
      metrics.observe(model.name, "infer" if scope["path"].endswith("/infer") else "classify_png", 429, 0.0)
      return error(str(e), 429, {"Retry-After": str(e.retry_after_s)})
    except batching.ShuttingDown:
      return None  # Answered 503 by the route.
    return None

  def find(request: Request) -> ServedModel:
    name, version = request.path_params["name"], request.path_params.get("version", "1")
    if name not in models:
      raise BadRequest(f"No model named {name[:64]!r}; this server has {sorted(models)}.", status=404)
    if version != "1":
      raise BadRequest(f"Version {version[:16]!r} does not exist; each model has version 1.", status=404)
    return models[name]

  def check_token(request: Request) -> None:
    if options.token is None:
      return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), options.token.encode()):
      raise BadRequest(
        "This endpoint needs the header `Authorization: Bearer <token>` with the server's token.",
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
      )

  def endpoint(name: str, *, guarded: bool):
    """A route handler from `handle(request, model) -> Response`: token, model lookup, 4xx mapping, metrics."""

    def decorate(handle):
      async def route(request: Request) -> Response:
        start = time.perf_counter()
        model_name = request.path_params.get("name")
        try:
          if guarded:
            check_token(request)
          response = await handle(request, find(request))
        except BadRequest as e:
          response = error(str(e), e.status, e.headers)
        except batching.QueueFull as e:
          metrics.rejected.labels(metrics.label(model_name)).inc()
          response = error(str(e), 429, {"Retry-After": str(e.retry_after_s)})
        except batching.ShuttingDown as e:
          response = error(f"Not taken: {e}. Retry on another replica.", 503)
        except TimeoutError:
          response = error(
            f"The request did not finish within {options.request_timeout_s} s (--request_timeout_s).", 504
          )
        metrics.observe(model_name, name, response.status_code, time.perf_counter() - start)
        if model_name in models and models[model_name].batcher:
          metrics.queue_rows.labels(model_name).set(models[model_name].batcher.queued_rows)
        return response

      return route

    return decorate

  async def compute(request: Request, model: ServedModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not model.ready:
      raise BadRequest(f"Model {model.name!r} is still warming up; poll /v2/models/{model.name}/ready.", status=503)
    request.scope.get("state", {}).get(WITHDRAW, lambda: None)()  # No `await` until `submit` has queued it.
    return await model.batcher.submit(inputs, timeout_s=options.request_timeout_s)

  async def live(request: Request) -> Response:
    return JSONResponse({"live": True})

  async def ready(request: Request) -> Response:
    is_ready = all(model.ready for model in models.values())
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

  async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": "gdjax", "version": "1", "extensions": []})

  @endpoint("metadata", guarded=False)
  async def model_metadata(request, model):
    return JSONResponse(model.metadata())

  @endpoint("ready", guarded=False)
  async def model_ready(request, model):
    return JSONResponse({"name": model.name, "ready": model.ready}, status_code=200 if model.ready else 503)

  @endpoint("infer", guarded=True)
  async def infer(request, model):
    model.batcher.check_room()  # Already checked by `Admission`; the queue may have filled since.
    _check_content_type(request, "application/json", allow_missing=True)
    if "inference-header-content-length" in request.headers:
      raise BadRequest("This server does not take Triton's binary tensor extension; send JSON (binary_data=False).")
    body = await request.body()
    request_id, inputs, wanted = validation.parse_infer_request(body, model.function, max_rows=model.max_rows)
    outputs = await compute(request, model, inputs)
    payload = {
      "model_name": model.name,
      "model_version": "1",
      "outputs": [_v2_tensor(n, outputs[n], model) for n in wanted],
    }
    if request_id is not None:
      payload["id"] = request_id
    return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json")

  @endpoint("classify_png", guarded=True)
  async def classify_png(request, model):
    if not model.classifies:
      raise BadRequest(
        f"Model {model.name!r} does not classify images; use /v2/models/{model.name}/infer with its inputs "
        f"{list(model.function.inputs)}."
      )
    _check_content_type(request, "image/png", allow_missing=False)
    images = validation.decode_png(await request.body(), model.image_shape)
    outputs = await compute(request, model, model.function.to_artifact({"images": images}))
    names = model.model.class_names
    label = int(outputs["labels"][0])
    probabilities = outputs["probabilities"][0].tolist()
    return JSONResponse(
      {
        "model_name": model.name,
        "label": label,
        "class_name": names[label] if label < len(names) else str(label),
        "probabilities": dict(zip(names or map(str, range(len(probabilities))), probabilities, strict=False)),
      }
    )

  @endpoint("samples_png", guarded=True)
  async def samples_png(request, model):
    if "images" not in model.function.outputs or "sample_ids" not in model.function.inputs:
      raise BadRequest(f"Model {model.name!r} does not generate images.")
    inputs = validation.parse_sample_query(
      dict(request.query_params), model.function, max_rows=model.max_rows, num_classes=len(model.model.class_names)
    )
    outputs = await compute(request, model, inputs)
    return Response(_png_grid(outputs["images"]), media_type="image/png")

  async def prometheus(request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)

  app = FastAPI(
    title="gdjax serve",
    lifespan=lifespan,
    # No /docs, /redoc or /openapi.json: the contract is V2's, and each model's metadata endpoint states it.
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    exception_handlers={HTTPException: http_error, Exception: internal_error},
  )
  app.add_middleware(Admission, limit=options.max_body_bytes, model_of=model_of, shed=shed)
  routes = [
    ("/v2/health/live", live, "GET"),
    ("/v2/health/ready", ready, "GET"),
    ("/v2", server_metadata, "GET"),
    ("/v2/models/{name}", model_metadata, "GET"),
    ("/v2/models/{name}/versions/{version}", model_metadata, "GET"),
    ("/v2/models/{name}/ready", model_ready, "GET"),
    ("/v2/models/{name}/versions/{version}/ready", model_ready, "GET"),
    ("/v2/models/{name}/infer", infer, "POST"),
    ("/v2/models/{name}/versions/{version}/infer", infer, "POST"),
    ("/models/{name}/classify", classify_png, "POST"),
    ("/models/{name}/samples.png", samples_png, "GET"),
    ("/metrics", prometheus, "GET"),
  ]
  # Plain (Starlette) routes, not `add_api_route`: the V2 JSON is read by `validation`, and FastAPI's
  # dependency and response layers, unused here, halved the classifier's throughput on 2 cores
  # (docs/serving.md).
  for path, handler, method in routes:
    app.add_route(path, handler, methods=[method], include_in_schema=False)
  app.state.models, app.state.metrics = models, metrics
  return app


class ExportDirectoryError(GdjaxError):
  """An export directory `gdjax serve` cannot load; the message says how to re-export."""


def _warm_up_all(models: list[ServedModel]) -> None:
  for model in models:
    start = time.perf_counter()
    try:
      model.warm_up()
    except Exception:
      log.exception("%s failed to warm up; it stays not ready", model.name)
      continue
    log.info(
      "%s is ready: %d buckets compiled in %.1f s", model.name, len(model.batcher.buckets), time.perf_counter() - start
    )


def _check_content_type(request: Request, expected: str, *, allow_missing: bool) -> None:
  given = request.headers.get("content-type")
  if given is None and allow_missing:
    return
  if (given or "").split(";")[0].strip().lower() != expected:
    raise BadRequest(f"Send the body as {expected}; got Content-Type {str(given)[:64]!r}.", status=415)


def _v2_tensor(name: str, value: np.ndarray, model: ServedModel) -> dict:
  info = model.function.outputs[name]
  return {"name": name, "datatype": info.datatype, "shape": list(value.shape), "data": value.ravel().tolist()}


def _png_grid(images: np.ndarray) -> bytes:
  from gdjax import samples  # Pillow and NumPy only.

  grid = samples.image_grid(images)
  buffer = io.BytesIO()
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(buffer, format="PNG")
  return buffer.getvalue()


def serve(model_dirs, options: ServeOptions, *, host: str = "127.0.0.1", port: int = 8080, log_level="info") -> int:
  """Runs the server until SIGTERM or SIGINT; returns 0 once the requests in flight are answered."""
  import uvicorn

  try:
    app = create_app(model_dirs, options)
  except artifact.ArtifactError as e:
    raise ExportDirectoryError(str(e)) from None
  config = uvicorn.Config(
    app,
    host=host,
    port=port,
    log_level=log_level,
    access_log=False,
    timeout_graceful_shutdown=int(options.request_timeout_s) + 5,
    # uvicorn's own cap on open connections and tasks (503 beyond): a safety net far above the queue's bound,
    # which answers overload with 429 first.
    limit_concurrency=max(1024, options.max_queue_rows * 4),
  )
  server = uvicorn.Server(config)
  # uvicorn re-raises the signal that stopped it once it has shut down; with a no-op handler in place
  # that re-raise does nothing, and the process exits 0 after a graceful stop.
  stopped_by = []
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda number, frame: stopped_by.append(number))
  server.run()
  if stopped_by:
    log.info("stopped by %s after answering the requests in flight", signal.Signals(stopped_by[0]).name)
  return 0
