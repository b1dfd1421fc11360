"""Serve a fine-tuned model on this machine: a local endpoint over HTTP, then batch predictions. No account, no Docker.

    python examples/serve_locally.py [RUN_FOLDER]

Without a run folder it first fine-tunes a small model (BBC News, 2 of MiniLM's 6 layers: about a minute on 2 CPU
cores). The endpoint speaks SageMaker's container contract (GET /ping, POST /invocations), so the requests below are
the ones a SageMaker endpoint answers, with the same JSON.
"""

import json
import sys
import urllib.request

import sagefinetune as sft

if len(sys.argv) > 1:
    run = sft.TrainingRun.from_run_dir(sys.argv[1])
else:
    data = sft.Dataset.example("bbc_news").sample(train=400, test=200, seed=1)
    job = (sft.Job.from_dataset(data)
           .model("sentence-transformers/all-MiniLM-L6-v2", num_hidden_layers=2)
           .hyperparameters(epochs=3, batch_size=16, learning_rate=2e-4, max_length=64))
    run = job.fit(run_dir="sft-runs/serve-example")

news = ["The striker scored twice as the club won the cup final.",
        "Shares fell sharply after the bank issued a profit warning.",
        "The new phone has a faster chip and a better camera."]

with run.deploy(instance="local") as endpoint:  # a server process on 127.0.0.1; deleted when the block ends
    print(endpoint)
    for text, answer in zip(news, endpoint.predict(news)):
        print(f"{answer['label']:>14} {answer['score']:.2f}  {text}")

    # Any HTTP client works; this is the standard library's (no proxy for 127.0.0.1).
    body = json.dumps({"inputs": [news[2]], "parameters": {"top_k": 2}}).encode()
    request = urllib.request.Request(f"{endpoint.url}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request) as response:
        print("POST /invocations ->", response.status, response.read().decode())

# The same handler, for a whole list (or a Dataset's test split, or a .jsonl file), into JSON Lines.
path = run.batch_predict(news, output_path="predictions.jsonl")
print(f"{path}:")
print(path.read_text(), end="")
