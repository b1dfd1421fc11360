"""The local endpoint: SageMaker's serving contract over HTTP on this machine, with dynamic batching.

    local.py    LocalServer and start_server(): the server subprocess, which sagefinetune.endpoint.LocalEndpoint wraps
    server.py   that process: load the model with the serving handler, bind, run uvicorn, stop on SIGTERM
    app.py      the Starlette app: GET /ping, POST /invocations, the body limit, JSON errors
    batcher.py  dynamic batching: concurrent requests share one forward pass
    memory.py   after each forward pass, the memory it freed goes back to the operating system
    batch.py    batch_predict_local(): JSON Lines in, JSON Lines out, as a SageMaker batch transform does

The handler itself is :mod:`sagefinetune.entrypoint.inference`, the file every model folder carries as
``code/inference.py``. Importing this package imports no torch, transformers or server library.
"""

from sagefinetune.serving.batch import batch_predict_local, jsonlines_records
from sagefinetune.serving.local import LocalServer, start_server

__all__ = ["LocalServer", "start_server", "batch_predict_local", "jsonlines_records"]
