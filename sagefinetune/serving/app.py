"""The HTTP app of the local endpoint: SageMaker's container contract on Starlette, answered by the serving handler.

    GET  /ping                   200 once the model is loaded
    POST /invocations            the handler's request and answer (see :mod:`sagefinetune.entrypoint.inference`)
    GET  /execution-parameters   what a batch transform asks a container for

Every error is JSON, ``{"code": 415, "message": "..."}``, and leaves the server serving: 400 bad input (JSON nested
deeper than the handler's MAX_DEPTH included), 406 Accept, 413 body or input count over the limit, 415 content type,
500 a failure in the model, 503 stopped before the request ran. A client that hangs up mid-body is dropped quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sagefinetune.entrypoint import inference as handler
from sagefinetune.entrypoint.redaction import RedactingFilter
from sagefinetune.serving.batcher import DynamicBatcher, ShuttingDown
from sagefinetune.serving.memory import releasing

__all__ = ["build_app", "BATCH_HEADER"]

log = logging.getLogger("sagefinetune.serving")
log.addFilter(RedactingFilter())  # this logger's records only: a secret in a request never reaches a log line

#: Response header: how many inputs (from all the requests batched together) shared the forward pass.
BATCH_HEADER = "X-Sft-Batch-Inputs"
#: How much of an oversized body is read (and dropped) before its 413 goes out, so the client can read the answer.
DRAIN_BYTES = 16 * 2**20


def build_app(classifier: handler.Classifier, *, max_batch_size: int = 32, max_wait_ms: float = 5.0,
              max_body_bytes: int = 6 * 2**20, workers: int = 1,
              max_inputs: int | None = handler.DEFAULT_MAX_INPUTS) -> Starlette:
    """The app serving ``classifier`` (from ``handler.model_fn``), with its dynamic batcher.

    The body is decoded on the event loop, one request at a time: a thread pool would hold several large bodies'
    Python objects at once. ``max_inputs``: the most inputs per request (None: no limit; 413 above).
    """
    batcher = DynamicBatcher(releasing(classifier.probabilities), max_batch_size=max_batch_size,
                             max_wait_ms=max_wait_ms, workers=workers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()  # after uvicorn has finished the requests in flight

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "Healthy"})

    async def execution_parameters(request: Request) -> Response:
        return JSONResponse({"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD",
                             "MaxPayloadInMB": max(1, max_body_bytes // 2**20)})

    async def invocations(request: Request) -> Response:
        async with batcher.request():
            try:
                body = await read_body(request, max_body_bytes)
                answer_type = handler.answer_type(request.headers.get("accept"))
                data = handler.read_request(body, request.headers.get("content-type"), max_inputs)
                classifier.check(data["inputs"])  # a bad request fails alone, before it joins a batch
                rows, shared = await in_turns(batcher, data["inputs"], max_batch_size)
                predictions = [classifier.format(row, data["parameters"]) for row in rows]
                text = handler.output_fn(predictions, answer_type)
            except handler.RequestError as exc:
                return error(exc.status, str(exc))
            except ClientDisconnect:  # nobody is left to answer
                return error(400, "the client hung up before sending the whole body")
            except ShuttingDown:
                return error(503, "the server stopped before this request ran (its grace period was over). Fix: "
                                  "send it again to a running endpoint.")
            except Exception as exc:  # noqa: BLE001 - the server keeps serving; the log has the traceback
                log.exception("prediction failed")
                return error(500, f"prediction failed: {type(exc).__name__}: {exc}")
        return Response(text, media_type=answer_type, headers={BATCH_HEADER: str(shared)})

    async def http_error(request: Request, exc: Any) -> Response:
        return error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}; this server answers "
                                      "GET /ping and POST /invocations")

    app = Starlette(routes=[Route("/ping", ping, methods=["GET"]),
                            Route("/invocations", invocations, methods=["POST"]),
                            Route("/execution-parameters", execution_parameters, methods=["GET"])],
                    lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.batcher = batcher
    return app


async def in_turns(batcher: DynamicBatcher, items: list[Any], size: int) -> tuple[list[Any], int]:
    """The rows of ``items``, asked for ``size`` at a time: a large request takes turns with the others instead of
    holding a worker for its whole length, and each pass's memory goes back before the next (one pass over 1024
    inputs grew the server by 170 MB). Also how many inputs shared the largest of those passes.

    A request has one part waiting or running per forward worker, so that a lone large request keeps every worker
    busy (one part at a time left one of two workers idle: 1,000 texts in one request were answered at half the
    rate of 1,000 one-text requests) while it still queues behind the other requests part by part.
    """
    parts = [items[start:start + size] for start in range(0, len(items), size)]
    answers: list[tuple[Any, int]] = [([], 0)] * len(parts)
    lanes = max(1, min(batcher.workers, len(parts)))

    async def lane(first: int) -> None:
        for i in range(first, len(parts), lanes):
            answers[i] = await batcher.predict(parts[i])

    if lanes == 1:  # one part, or one worker: no task to make (the usual real-time request)
        await lane(0)
    else:
        tasks = [asyncio.ensure_future(lane(k)) for k in range(lanes)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # one lane failed (or the request was cancelled): the others stop asking
                task.cancel()
    return [row for part, _ in answers for row in part], max((inputs for _, inputs in answers), default=0)


async def read_body(request: Request, limit: int, drain: int = DRAIN_BYTES) -> bytes:
    """The body, or a 413 once it is known to be over ``limit`` bytes (declared or streamed).

    The rest of an oversized body is read and dropped (up to ``drain`` bytes more) before the 413 goes out: a server
    that closes on unread data makes the kernel reset the connection, and a client still sending then sees "connection
    reset" instead of the 413 and its message.
    """
    declared = request.headers.get("content-length", "")
    over = declared.isdigit() and int(declared) > limit
    if over and int(declared) > limit + drain:
        raise too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        over = over or size > limit
        if size > limit + drain:
            break
        if not over:
            chunks.append(chunk)
    if over:
        raise too_large(int(declared), limit) if declared.isdigit() else too_large(size, limit, streamed=True)
    return b"".join(chunks)


def too_large(size: int, limit: int, streamed: bool = False) -> handler.RequestError:
    what = f"more than {limit:,} bytes" if streamed else f"{size:,} bytes"
    return handler.RequestError(f"the request body is {what}; this endpoint takes at most {limit:,} bytes "
                                f"(max_body_mb={limit / 2**20:g}). Fix: send fewer inputs per request, or deploy "
                                "with a larger max_body_mb.", status=413)


def error(status: int, message: str) -> Response:
    return JSONResponse({"code": status, "message": message}, status_code=status)
