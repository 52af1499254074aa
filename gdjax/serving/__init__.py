"""`gdjax export` and `gdjax serve`: trained models as `jax.export` artifacts, served on the Open Inference Protocol.

`artifact` loads an export with jax and numpy alone (it is copied into each
export directory); `export` and `saved_model` write them; `server`,
`runtime`, `batching`, `validation` and `metrics` serve them. The server's
modules import FastAPI and uvicorn, the `serve` extra. docs/serving.md has
the contract, the library choice and the measurements.
"""
