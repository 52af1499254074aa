"""`gdjax serve`: exported models over HTTP, on the Open Inference Protocol v2 (KServe, MLServer, Triton).

Built on FastAPI and uvicorn; docs/serving.md says why these rather than
Seldon's MLServer or KServe's `ModelServer`. The V2 JSON is read and
written here (with orjson) rather than by FastAPI's pydantic models, so
that every refusal carries a message about the tensor contract (and a
pydantic model of a 100,000-deep list never gets built). The V2 inference
route, where the load is, is answered straight from the ASGI call
(`asgi.App`), past FastAPI's middleware and router; the other routes are
plain Starlette routes of the FastAPI app, which skips FastAPI's
per-request dependency layer. Endpoints:

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
import gc
import hmac
import io
import logging
import signal
import time

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import Route

from gdjax.errors import GdjaxError
from gdjax.serving import artifact, asgi, batching, validation
from gdjax.serving.metrics import ServeMetrics
from gdjax.serving.runtime import ServedModel, ServeOptions, load_models
from gdjax.serving.validation import BadRequest

log = logging.getLogger("gdjax.serve")
WITHDRAW = "gdjax_withdraw"  # The key, in an ASGI scope's state, of the request's `Batcher.announce` withdrawal.
INTERNAL_ERROR = "The server failed on this request; it is logged. The server is still up."


def error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
  return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(model_dirs, options: ServeOptions, *, freeze_gc: bool = False) -> asgi.App:
  """The ASGI app serving `model_dirs`; the models load here (errors raise), and warm up once it starts.

  `freeze_gc` (the server process): once warm, every object so far (the models, jax's caches) leaves the
  garbage collector's sight (`gc.freeze`). Its full collections otherwise walk them all, about 0.1 s each,
  every few seconds under load: some 15 us per request.
  """
  models = load_models(model_dirs, options)
  metrics = ServeMetrics(models)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    for model in models.values():
      model.start(metrics)
    warm_up = asyncio.get_running_loop().run_in_executor(None, _warm_up_all, list(models.values()))
    if freeze_gc:
      warm_up.add_done_callback(lambda _: gc.freeze())
    yield
    await asyncio.gather(warm_up, return_exceptions=True)
    for model in models.values():
      await model.batcher.stop()

  async def http_error(request, exc):
    return error(str(exc.detail), exc.status_code, getattr(exc, "headers", None))

  async def internal_error(request, exc):
    log.exception("internal error on %s", request.url.path)
    return error(INTERNAL_ERROR, 500)

  def model_of(scope) -> ServedModel | None:
    """The model a PNG upload (POST /models/{name}/classify) is for, else None; `infer` admits its own."""
    parts = scope["path"].split("/")
    if scope["method"] == "POST" and len(parts) == 4 and parts[1] == "models" and parts[3] == "classify":
      return models.get(parts[2])
    return None

  def shed(model: ServedModel, scope) -> tuple[str, int, dict] | None:
    """A 429 (message, status, headers) when `model` has `max_queue_rows` requests in flight or rows queued.

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
      return str(e), 429, {"Retry-After": str(e.retry_after_s)}
    except batching.ShuttingDown:
      return None  # Answered 503 by the route.
    return None

  def find(params: dict) -> ServedModel:
    name, version = params["name"], params.get("version", "1")
    if name not in models:
      raise BadRequest(f"No model named {name[:64]!r}; this server has {sorted(models)}.", status=404)
    if version != "1":
      raise BadRequest(f"Version {version[:16]!r} does not exist; each model has version 1.", status=404)
    return models[name]

  def check_token(headers: Headers | asgi.RequestHeaders) -> None:
    if options.token is None:
      return
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), options.token.encode()):
      raise BadRequest(
        "This endpoint needs the header `Authorization: Bearer <token>` with the server's token.",
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
      )

  def refusal(e: Exception, model_name: str | None) -> tuple[str, int, dict | None]:
    """The answer (message, status, headers) to a request that raised `e`; re-raises anything unexpected."""
    if isinstance(e, BadRequest):
      return str(e), e.status, e.headers
    if isinstance(e, batching.QueueFull):
      metrics.rejected.labels(metrics.label(model_name)).inc()
      return str(e), 429, {"Retry-After": str(e.retry_after_s)}
    if isinstance(e, batching.ShuttingDown):
      return f"Not taken: {e}. Retry on another replica.", 503, None
    if isinstance(e, TimeoutError):
      return f"The request did not finish within {options.request_timeout_s} s (--request_timeout_s).", 504, None
    raise e

  def endpoint(name: str, *, guarded: bool):
    """A route handler from `handle(request, model) -> Response`: token, model lookup, 4xx mapping, metrics."""

    def decorate(handle):
      async def route(request: Request) -> Response:
        start = time.perf_counter()
        try:
          if guarded:
            check_token(request.headers)
          response = await handle(request, find(request.path_params))
        except Exception as e:
          response = error(*refusal(e, request.path_params.get("name")))
        metrics.observe(request.path_params.get("name"), name, response.status_code, time.perf_counter() - start)
        return response

      return route

    return decorate

  async def compute(model: ServedModel, inputs: dict[str, np.ndarray], withdraw) -> dict[str, np.ndarray]:
    if not model.ready:
      raise BadRequest(f"Model {model.name!r} is still warming up; poll /v2/models/{model.name}/ready.", status=503)
    withdraw()  # No `await` until `submit` has queued it.
    return await model.batcher.submit(inputs, timeout_s=options.request_timeout_s)

  async def infer(scope, receive, send) -> None:
    """POST /v2/models/{name}[/versions/{version}]/infer, as raw ASGI (see `asgi.App`): admission as
    `asgi.Admission` does it, then token, model, checks, batcher; the same with batching on or off."""
    start = time.perf_counter()
    model_name = scope["path_params"]["name"]
    model, withdraw = models.get(model_name), _nothing
    if model is not None and model.batcher is not None:
      refused = shed(model, scope)
      if refused is not None:
        return await asgi.send_error(send, *refused)
      withdraw = model.batcher.announce()  # Withdrawn by `compute`, or below if the request fails first.
      model.in_flight += 1
    try:
      try:
        body = await asgi.read_body(scope, receive, options.max_body_bytes)
        if body is None:
          return  # The client went away.
        answer, status, headers = await infer_answer(scope, body, withdraw), 200, None
      except asgi.BodyTooLarge:
        message, status, headers = asgi.too_large_message(options.max_body_bytes), 413, None
        answer = asgi.dump_json({"error": message})
      except Exception as e:
        try:
          message, status, headers = refusal(e, model_name)
        except Exception:
          log.exception("internal error on %s", scope["path"])
          message, status, headers = INTERNAL_ERROR, 500, None
        answer = asgi.dump_json({"error": message})
      await asgi.send_json(send, status, answer, headers)
      metrics.observe(model_name, "infer", status, time.perf_counter() - start)
    finally:
      if model is not None and model.batcher is not None:
        model.in_flight -= 1
        withdraw()

  async def infer_answer(scope, body: bytes, withdraw) -> bytes:
    headers = asgi.RequestHeaders(scope)
    check_token(headers)
    model = find(scope["path_params"])
    model.batcher.check_room()  # Already checked on arrival; the queue may have filled since.
    _check_content_type(headers, "application/json", allow_missing=True)
    if "inference-header-content-length" in headers:
      raise BadRequest("This server does not take Triton's binary tensor extension; send JSON (binary_data=False).")
    request_id, inputs, wanted = validation.parse_infer_request(body, model.function, max_rows=model.max_rows)
    outputs = await compute(model, inputs, withdraw)
    payload = {
      "model_name": model.name,
      "model_version": "1",
      "outputs": [_v2_tensor(n, outputs[n], model) for n in wanted],
    }
    if request_id is not None:
      payload["id"] = request_id
    return asgi.dump_json(payload)

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

  @endpoint("classify_png", guarded=True)
  async def classify_png(request, model):
    if not model.classifies:
      raise BadRequest(
        f"Model {model.name!r} does not classify images; use /v2/models/{model.name}/infer with its inputs "
        f"{list(model.function.inputs)}."
      )
    _check_content_type(request.headers, "image/png", allow_missing=False)
    images = validation.decode_png(await request.body(), model.image_shape)
    withdraw = request.scope.get("state", {}).get(WITHDRAW, _nothing)
    outputs = await compute(model, model.function.to_artifact({"images": images}), withdraw)
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
    outputs = await compute(model, inputs, _nothing)
    return Response(_png_grid(outputs["images"]), media_type="image/png")

  async def prometheus(request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)

  app = asgi.App(
    title="gdjax serve",
    lifespan=lifespan,
    # No /docs, /redoc or /openapi.json: the contract is V2's, and each model's metadata endpoint states it.
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    exception_handlers={HTTPException: http_error, Exception: internal_error},
  )
  app.add_middleware(asgi.Admission, limit=options.max_body_bytes, model_of=model_of, shed=shed, state_key=WITHDRAW)
  routes = [
    ("/v2/health/live", live, "GET"),
    ("/v2/health/ready", ready, "GET"),
    ("/v2", server_metadata, "GET"),
    ("/v2/models/{name}", model_metadata, "GET"),
    ("/v2/models/{name}/versions/{version}", model_metadata, "GET"),
    ("/v2/models/{name}/ready", model_ready, "GET"),
    ("/v2/models/{name}/versions/{version}/ready", model_ready, "GET"),
    ("/models/{name}/classify", classify_png, "POST"),
    ("/models/{name}/samples.png", samples_png, "GET"),
    ("/metrics", prometheus, "GET"),
  ]
  # Plain (Starlette) routes, not `add_api_route`: the V2 JSON is read by `validation`, and FastAPI's
  # dependency and response layers, unused here, halved the classifier's throughput on 2 cores
  # (docs/serving.md).
  for path, handler, method in routes:
    app.add_route(path, handler, methods=[method], include_in_schema=False)
  # The inference paths as Starlette routes too: `App` answers their POSTs before FastAPI sees them, and
  # the router answers any other method with 405. A POST routed here (were `App.infer` unset) is answered
  # by the same handler.
  for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
    app.router.routes.append(Route(path, _AsgiEndpoint(infer), methods=["POST"], include_in_schema=False))
  app.infer = infer
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


def _nothing() -> None:
  pass


class _AsgiEndpoint:
  """A raw ASGI callable as a Starlette route's endpoint (a plain function would be taken for a request handler)."""

  def __init__(self, app):
    self.app = app

  async def __call__(self, scope, receive, send):
    await self.app(scope, receive, send)


def _check_content_type(headers: Headers | asgi.RequestHeaders, expected: str, *, allow_missing: bool) -> None:
  given = headers.get("content-type")
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
    app = create_app(model_dirs, options, freeze_gc=True)
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
