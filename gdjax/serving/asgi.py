"""The ASGI layer under `gdjax serve`'s routes: admission (load shedding, body limit), JSON answers, and the
direct path of the V2 inference route.

`POST /v2/models/{name}[/versions/{version}]/infer` is where the load is. `App`
answers it straight from the ASGI call: profiled at concurrency 32, FastAPI's
middleware stack, the router and Starlette's Request and Response took more
of the event loop's time than the route's own parsing, checks and batching
(docs/serving.md, "Load"). Every other route goes through FastAPI as
before, and so does any other method on the inference paths (405). The direct
path runs the same admission, checks, batcher and answers whether batching is
on or off.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import orjson
from fastapi import FastAPI

JSON_HEADERS = [(b"content-type", b"application/json")]


def dump_json(value) -> bytes:
  """Compact JSON of a value holding no None, as `json.dumps` writes it, 5 times faster with orjson.

  orjson refuses some strings (a lone surrogate in an echoed `id`), and writes NaN and infinities as null
  where `json` writes NaN and Infinity (a VAE's log-weights can be -Infinity). In a value without None, a
  null in orjson's text is such a number (or the word inside a string): then `json` writes it.
  """
  try:
    text = orjson.dumps(value)
  except (orjson.JSONEncodeError, TypeError):
    text = b"null"
  return text if b"null" not in text else json.dumps(value, separators=(",", ":")).encode()


async def send_json(send, status: int, body: bytes, headers: dict | None = None) -> None:
  """One complete JSON answer through ASGI `send`."""
  extra = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (headers or {}).items()]
  await send(
    {
      "type": "http.response.start",
      "status": status,
      "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra],
    }
  )
  await send({"type": "http.response.body", "body": body})


def send_error(send, message: str, status: int, headers: dict | None = None) -> Awaitable[None]:
  return send_json(send, status, dump_json({"error": message}), headers)


class BodyTooLarge(Exception):
  pass


class RequestHeaders:
  """A request's headers as Starlette's `Headers.get` reads them (the first of a repeated name, latin-1): one
  dict for the few the inference route looks at, where `Headers` scans the list on every lookup."""

  __slots__ = ("_raw",)

  def __init__(self, scope):
    self._raw = dict(reversed(scope["headers"]))

  def get(self, name: str, default: str | None = None) -> str | None:
    value = self._raw.get(name.encode("latin-1"))
    return default if value is None else value.decode("latin-1")

  def __contains__(self, name: str) -> bool:
    return name.encode("latin-1") in self._raw


def header(scope, name: bytes) -> bytes | None:
  """The first value of request header `name` (lower case), as Starlette's `Headers.get` gives it."""
  for key, value in scope["headers"]:
    if key == name:
      return value
  return None


async def read_body(scope, receive, limit: int) -> bytes | None:
  """The request body, or None if the client went away; `BodyTooLarge` past `limit` bytes, by the declared
  Content-Length or by counting what arrives."""
  declared = dict(scope["headers"]).get(b"content-length")
  if declared is not None and (not declared.isdigit() or int(declared) > limit):
    raise BodyTooLarge
  chunks, size, more = [], 0, True
  while more:
    message = await receive()
    if message["type"] == "http.disconnect":
      return None
    chunks.append(message.get("body", b""))
    size += len(chunks[-1])
    more = message.get("more_body", False)
    if size > limit:
      raise BodyTooLarge
  return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large_message(limit: int) -> str:
  return f"The body exceeds this server's limit of {limit} bytes (--max_body_bytes)."


def infer_path(path: str) -> dict | None:
  """The path parameters of `/v2/models/{name}/infer` or `/v2/models/{name}/versions/{version}/infer` (as
  Starlette's router would match them), else None."""
  parts = path.split("/")
  if len(parts) == 5:
    if parts[4] == "infer" and parts[3] and parts[2] == "models" and parts[1] == "v2" and not parts[0]:
      return {"name": parts[3]}
  elif len(parts) == 7 and parts[6] == "infer" and parts[4] == "versions" and parts[3] and parts[5]:
    if parts[2] == "models" and parts[1] == "v2" and not parts[0]:
      return {"name": parts[3], "version": parts[5]}
  return None


class App(FastAPI):
  """FastAPI, with POST to the V2 inference paths handed to `infer(scope, receive, send)` directly."""

  infer: Callable | None = None

  async def __call__(self, scope, receive, send):
    if self.infer is not None and scope["type"] == "http" and scope["method"] == "POST":
      params = infer_path(scope["path"])
      if params is not None:
        scope["path_params"] = params
        return await self.infer(scope, receive, send)
    return await super().__call__(scope, receive, send)


class Admission:
  """ASGI middleware in front of FastAPI's routes: sheds load and refuses large bodies before a byte is parsed.

  For the PNG upload (`model_of(scope)` gives its model); the V2 inference route does the same in
  `App.infer`. `shed(model, scope)` returns a refusal (a 429) when the model has no room in its queue:
  under overload a refusal then costs no body read, no parsing and no routing, which keeps the server
  answering faster than the requests arrive. A body over `limit` bytes gets 413.
  """

  def __init__(self, app, limit: int, model_of, shed, state_key: str):
    self.app, self.limit, self.model_of, self.shed, self.state_key = app, limit, model_of, shed, state_key

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    model = self.model_of(scope)
    if model is None or model.batcher is None:
      return await self.admit(scope, receive, send)
    refusal = self.shed(model, scope)
    if refusal is not None:
      return await send_error(send, *refusal)
    # From here until `submit`, the batcher knows this request is coming (see `batching.Batcher.announce`).
    withdraw = model.batcher.announce()
    scope.setdefault("state", {})[self.state_key] = withdraw
    model.in_flight += 1
    try:
      return await self.admit(scope, receive, send)
    finally:
      model.in_flight -= 1
      withdraw()

  async def admit(self, scope, receive, send):
    try:
      body = await read_body(scope, receive, self.limit)
    except BodyTooLarge:
      return await send_error(send, too_large_message(self.limit), 413)
    if body is None:
      return
    replayed = False

    async def replay():
      nonlocal replayed
      if not replayed:
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}
      return await receive()

    return await self.app(scope, replay, send)
