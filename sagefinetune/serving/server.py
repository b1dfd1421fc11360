"""The local endpoint's server process: load the model, bind, serve with uvicorn until SIGTERM or SIGINT.

    python -m sagefinetune.serving ./sft-runs/my-run/model --port 8080

:func:`sagefinetune.endpoint.deploy_local` starts this in a subprocess. On SIGTERM uvicorn stops accepting
connections, finishes the requests in flight (up to ``--grace`` seconds), then stops the batcher and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time

from sagefinetune.entrypoint.inference import DEFAULT_MAX_INPUTS, PRECISIONS  # the standard library only
from sagefinetune.entrypoint.serving_choice import RUNTIMES

__all__ = ["main"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sagefinetune.serving",
                                     description="Serve a model folder with SageMaker's container contract.")
    parser.add_argument("model_dir", help="a model folder (a run's model_dir)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument("--max-batch-size", type=int,
                        help="most inputs in one batch (default: 32 for PyTorch, 4 for ONNX; see default_max_batch)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for requests in flight (while no other worker is free)")
    parser.add_argument("--max-body-mb", type=float, default=6.0, help="largest request body, in MiB (413 above)")
    parser.add_argument("--max-inputs", type=int, default=DEFAULT_MAX_INPUTS,
                        help=f"most inputs per request (413 above; 0: no limit; default {DEFAULT_MAX_INPUTS})")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds to finish requests in flight on SIGTERM")
    parser.add_argument("--workers", type=int, help="forward passes that may run at once (default: 2, or 1 on one core)")
    parser.add_argument("--threads", type=int, help="torch threads per forward pass (default: the cores / workers)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto: bf16 where the device computes bf16 natively, else fp32")
    parser.add_argument("--runtime", default="auto", choices=RUNTIMES,
                        help="auto: what the folder's serving.json chose (the int8 ONNX export, or PyTorch)")
    parser.add_argument("--port-file", help="write {'port', 'pid'} here once bound (for the parent)")
    parser.add_argument("--parent-pid", type=int, help="shut down when this process is gone")
    parser.add_argument("--deadline-file", help="shut down at the time in this JSON file ({'expires_at': epoch "
                        "seconds}), re-read every second so that it can be moved")
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Made with proto IPPROTO_TCP, so that asyncio sets TCP_NODELAY on every connection it
    accepts (it checks the proto): with proto 0, Nagle's algorithm held each response's body back until the client's
    delayed ACK, adding 40 ms to every request on a kept-alive connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"port": port, "pid": os.getpid()}, fh)
    os.replace(tmp, path)  # the parent never reads half a file


def watch_parent(parent_pid: int, server: object) -> None:
    """Shut down gracefully once the process that started this server is gone (no orphan servers)."""
    def loop() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        print("[sagefinetune] the parent process is gone: shutting down", flush=True)
        server.should_exit = True  # type: ignore[attr-defined]

    threading.Thread(target=loop, name="sft-parent-watch", daemon=True).start()


def read_deadline(path: str) -> float | None:
    try:
        with open(path) as fh:
            return float(json.load(fh)["expires_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # gone or being replaced: no deadline this second


def watch_deadline(path: str, server: object, poll: float = 1.0) -> threading.Thread:
    """Shut down gracefully at the deadline in ``path`` (a ttl): the server ends itself, even if its client is gone."""
    def loop() -> None:
        while True:
            deadline = read_deadline(path)
            if deadline is not None and time.time() >= deadline:
                break
            time.sleep(poll if deadline is None else min(poll, max(0.01, deadline - time.time())))
        print("[sagefinetune] the endpoint's ttl is over: shutting down", flush=True)
        server.should_exit = True  # type: ignore[attr-defined]

    thread = threading.Thread(target=loop, name="sft-deadline-watch", daemon=True)
    thread.start()
    return thread


def parallelism(workers: int | None, threads: int | None) -> tuple[int, int]:
    """Forward passes at once, and torch threads each. Default: 2 passes on half the cores each (1 on one core).

    Two passes keep every core busy while the next batch forms, and a pass on fewer threads does not stall when
    another busy process takes a core from one of its threads (one team of threads on every core waits for its
    slowest thread at each operation: on a shared 2-core machine that made batches 10x slower).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = workers or (2 if cores >= 2 else 1)
    return workers, threads or max(1, cores // workers)


def default_max_batch(classifier: object) -> int:
    """The most inputs a batch takes unless told: 32 where a batch runs as about one forward pass (PyTorch, whose
    chunks may pad their inputs by up to 25%), 4 where it runs as about one pass per input (ONNX Runtime, whose chunks
    hold inputs of one length: see the handler's PADDING_WASTE). There a large batch only holds its requests' answers
    back while the other worker waits for work: with 16 clients sending one short review each, batches of at most 4
    served 1,033 to 1,105 requests/s against 912 to 978 for 32 (benchmarks/serving.py; docs/benchmarks.rst)."""
    return 32 if getattr(classifier, "padding_waste", 0.25) > 0 else 4


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # the forward workers already keep the cores busy: the tokenizers library's own thread pool would only take
    # cores from them, and a worker waits while its small batch queues for that pool's threads
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import uvicorn

    from sagefinetune.serving.app import build_app
    from sagefinetune.serving.classifiers import load_classifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    started = time.time()
    workers, threads = parallelism(args.workers, args.threads)
    classifier = load_classifier(args.model_dir, threads, args.precision, args.runtime)
    max_batch = args.max_batch_size or default_max_batch(classifier)
    app = build_app(classifier, max_batch_size=max_batch, max_wait_ms=args.max_wait_ms,
                    max_body_bytes=int(args.max_body_mb * 2**20), workers=workers, max_inputs=args.max_inputs or None)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(args.grace))
    server = uvicorn.Server(config)
    if args.parent_pid:
        watch_parent(args.parent_pid, server)
    if args.deadline_file:
        watch_deadline(args.deadline_file, server)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"[sagefinetune] serving {args.model_dir} at http://{host}:{port} ({classifier.describe()}; labels "
          f"{classifier.labels}; max batch {max_batch}, wait {args.max_wait_ms:g} ms, max inputs "
          f"{args.max_inputs or 'unlimited'}, {workers} worker(s) x "
          f"{threads} thread(s); "
          f"loaded in {time.time() - started:.1f}s)", flush=True)
    # uvicorn handles SIGTERM/SIGINT (graceful shutdown), then re-raises the signal to the handlers found before it:
    # make those a note, so that a clean stop exits 0
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: print(f"[sagefinetune] {signal.Signals(number).name}: stopped "
                                                          "after the requests in flight", flush=True))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
