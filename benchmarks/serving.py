"""The local endpoint against naive servers that run a transformers pipeline once per request; same model, same data.

    python benchmarks/serving.py [--run-dir sft-runs/onnx-bench] [--requests 80] [--seconds 5]

Every server is uvicorn + Starlette in its own process on 127.0.0.1, answering POST /invocations with one text per
request (the real-time case), with torch's default threads (one per core). Two naive servers, as tutorials write them:
"threaded" calls ``pipeline(text)`` in Starlette's thread pool (requests run concurrently, like a threaded Flask app);
"serial" calls it inside an ``async def`` endpoint (requests run one at a time on the event loop). sagefinetune's
endpoint batches concurrent requests into one forward pass; it is measured with its defaults (2 forward workers on half
the cores each; what the check at deploy chose: the int8 ONNX export when it scores within 1 point of PyTorch on the
test split), with ``runtime="pytorch"`` (PyTorch, precision "auto": bf16 on a CPU with bf16 instructions; the defaults
before the check) and with precision="fp32" (what batching alone gives). Printed in one run: p50 and p99 latency at 1
client, throughput at 16 concurrent clients, each endpoint's ratios to each naive server (target for the defaults: at
least 8x the serial naive server's throughput, a p50 no worse), the check's record and the machine (CPU, cores, load).

It serves the quickstart's model: MiniLM-L6 fine-tuned on 2,000 Rotten Tomatoes reviews (trained into ``--run-dir``
unless it holds a finished run already, as benchmarks/onnx_speed.py trains it), so that the check at deploy has a test
split to score. Inputs are truncated at 128 tokens by every server.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import sagefinetune as sft
from sagefinetune.endpoint import deploy_local
from sagefinetune.entrypoint import hardware

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MAX_LENGTH = 128
NAIVE = ("naive pipeline, threaded", "naive pipeline, serial")
ENDPOINTS: dict[str, dict[str, object]] = {"endpoint (defaults)": {},
                                           "endpoint (runtime=pytorch, bf16 auto)": {"runtime": "pytorch"},
                                           "endpoint (runtime=pytorch, fp32)": {"precision": "fp32"}}


def trained_model(run_dir: Path) -> Path:
    """The quickstart's model (MiniLM-L6 on 2,000 Rotten Tomatoes reviews, max_length 128), trained once."""
    if not (run_dir / "model" / "metrics.json").exists():
        job = (sft.Job.from_dataset(sft.Dataset.example("rotten_tomatoes").sample(train=2000, test=500, seed=42))
               .map_labels({0: "negative", 1: "positive"})
               .hyperparameters(epochs=1, batch_size=32, max_length=MAX_LENGTH))
        job.fit(run_dir=run_dir, progress=False)
    return run_dir / "model"


def machine() -> str:
    """The CPU's model name, its cores and the load average now (the machine may be shared)."""
    import os

    name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), "unknown CPU")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{name}, {len(os.sched_getaffinity(0))} cores; load average {load} (1, 5, 15 min)"


def naive_server(model_dir: str, port_file: str, mode: str) -> None:
    """A naive server: one pipeline call per request, in the thread pool ("threaded") or on the event loop ("serial")."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    from transformers import pipeline

    from sagefinetune.serving.server import bind, write_port_file

    pipe = pipeline("text-classification", model=model_dir, tokenizer=model_dir)

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "Healthy"})

    async def invocations(request: Request) -> Response:
        inputs = json.loads(await request.body())["inputs"]
        if mode == "threaded":
            return JSONResponse(await run_in_threadpool(pipe, inputs, truncation=True, max_length=MAX_LENGTH))
        return JSONResponse(pipe(inputs, truncation=True, max_length=MAX_LENGTH))

    app = Starlette(routes=[Route("/ping", ping), Route("/invocations", invocations, methods=["POST"])])
    sock = bind("127.0.0.1", 0)
    write_port_file(port_file, sock.getsockname()[1])
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def start_naive(model_dir: Path, work: Path, mode: str) -> tuple[subprocess.Popen[bytes], str]:
    port_file = work / f"naive-{mode}.json"
    process = subprocess.Popen([sys.executable, __file__, "--naive-server", str(model_dir), str(port_file), mode])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if port_file.exists():
            url = f"http://127.0.0.1:{json.loads(port_file.read_text())['port']}"
            try:
                OPENER.open(f"{url}/ping", timeout=2).close()
                return process, url
            except OSError:
                pass
        if process.poll() is not None:
            raise RuntimeError("the naive server exited while starting")
        time.sleep(0.2)
    raise RuntimeError("the naive server did not start")


def connect(url: str) -> http.client.HTTPConnection:
    """One client's connection, kept alive between its requests and with TCP_NODELAY, as urllib3 (requests, boto3)
    opens them: http.client sends a request's headers and body in two writes, and Nagle's algorithm would hold the
    body back until the server's delayed ACK, 40 ms later."""
    host, port = urllib.parse.urlsplit(url).netloc.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def post(connection: http.client.HTTPConnection, text: str) -> float:
    body = json.dumps({"inputs": [text]}).encode()
    started = time.perf_counter()
    connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
    with connection.getresponse() as response:
        answer = json.loads(response.read())
    assert response.status == 200 and len(answer) == 1, answer
    return time.perf_counter() - started


def concurrent_clients(url: str, texts: list[str], seconds: float, clients: int = 16) -> float:
    """Requests per second with ``clients`` threads, each sending one request after another on one kept-alive
    connection for ``seconds``: the answers that arrived in that time, over it. Every server is measured for the same
    time, whatever its speed (a fixed count of requests measured a fast server over a fraction of a second), and the
    connections are open before the clock starts."""
    errors: list[BaseException] = []
    answered = [0] * clients
    clock: list[float] = []  # the start, set once every client has connected and before any sends
    ready = threading.Barrier(clients + 1, action=lambda: clock.append(time.perf_counter()))

    def client(c: int) -> None:
        try:
            connection = connect(url)
            ready.wait()
            end, i = clock[0] + seconds, c
            while time.perf_counter() < end:
                post(connection, texts[i % len(texts)])
                answered[c] += time.perf_counter() <= end
                i += clients
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(answered) / seconds


def measure(url: str, texts: list[str], args: argparse.Namespace) -> tuple[float, float, float]:
    """p50 and p99 ms at 1 client (after 5 warm-up requests), and requests per second at 16 clients."""
    connection = connect(url)
    for text in texts[:5]:
        post(connection, text)
    latencies = sorted(post(connection, texts[i % len(texts)]) for i in range(args.requests))
    connection.close()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return statistics.median(latencies) * 1000, p99 * 1000, concurrent_clients(url, texts, args.seconds)


def run_all(model_dir: Path, work: Path, texts: list[str], args: argparse.Namespace) -> dict[str, tuple[float, ...]]:
    """Every server started at once (idle ones take no CPU), then measured in turns, ``--rounds`` times: a machine
    that gets busier or quieter during the run moves every server alike. Each figure is the median of its rounds."""
    rounds: dict[str, list[tuple[float, float, float]]] = {}
    with contextlib.ExitStack() as stack:
        urls = {}
        for mode in ("threaded", "serial"):
            process, urls[f"naive pipeline, {mode}"] = start_naive(model_dir, work, mode)
            stack.callback(lambda p=process: (p.terminate(), p.wait()))
        for name, options in ENDPOINTS.items():
            urls[name] = stack.enter_context(deploy_local(model_dir, **options)).url
        for r in range(args.rounds):
            for name, url in urls.items():
                rounds.setdefault(name, []).append(measure(url, texts, args))
            print(f"round {r + 1} of {args.rounds}: done", flush=True)
    return {name: tuple(statistics.median(m[i] for m in got) for i in range(3)) for name, got in rounds.items()}


def precision_check(model_dir: Path, texts: list[str]) -> str:
    """How far precision="auto" moves the answers from fp32 on these texts: labels that agree, the largest score gap."""
    auto, fp32 = (sft.Predictor(model_dir, precision=p) for p in ("auto", "fp32"))
    a, b = (p.predict(texts, all_scores=True) for p in (auto, fp32))
    agree = sum(x[0]["label"] == y[0]["label"] for x, y in zip(a, b))
    gap = max(abs(s["score"] - next(t["score"] for t in y if t["label"] == s["label"])) for x, y in zip(a, b) for s in x)
    return (f"precision auto ({auto.runtime.precision}) vs fp32 on {len(texts)} texts: the same best label for {agree}, "
            f"largest score difference {gap:.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="sft-runs/onnx-bench", help="a finished run (else trained there)")
    parser.add_argument("--example", default="rotten_tomatoes", choices=["rotten_tomatoes", "imdb", "bbc_news"])
    parser.add_argument("--requests", type=int, default=80, help="requests at 1 client")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long 16 clients send requests to each server")
    parser.add_argument("--rounds", type=int, default=3, help="measure every server this many times, in turns")
    parser.add_argument("--naive-server", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        return naive_server(*args.naive_server)

    texts = list(sft.Dataset.example(args.example).sample(train=10, test=200, seed=0).load()["test"]["text"])
    model_dir = trained_model(Path(args.run_dir))
    before = machine()
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        results = run_all(model_dir, Path(tmp), texts, args)
        check = precision_check(model_dir, texts)
    record = json.loads((model_dir / "serving.json").read_text()) if (model_dir / "serving.json").exists() else {}

    print(f"\n{args.example} texts, one per request, truncated at {MAX_LENGTH} tokens; model {model_dir.parent}; "
          f"medians of {args.rounds} rounds")
    print(f"{'server':<34}{'p50 ms (1 client)':>19}{'p99 ms (1 client)':>19}{'req/s (16 clients)':>20}")
    for name, (p50, p99, rps) in results.items():
        print(f"{name:<34}{p50:>19.1f}{p99:>19.1f}{rps:>20.1f}")
    print(f"\n{hardware.detect().describe()}; {check}")
    print(f"the check at deploy (serving.json): {record.get('runtime')} {record.get('precision')}: {record.get('why')} "
          f"({record.get('rows')} test rows)")
    print(f"machine: before {before}; after {machine()}")
    for ours in ENDPOINTS:
        for naive in NAIVE:
            (n50, _, nrps), (o50, _, orps) = results[naive], results[ours]
            target = " (target >= 8)" if ours == "endpoint (defaults)" and naive.endswith("serial") else ""
            print(f"{ours} vs {naive}: throughput {orps / nrps:.2f}x{target}, p50 {o50 / n50:.2f}x (target <= 1)")


if __name__ == "__main__":
    main()
