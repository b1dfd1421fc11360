"""From notebook to pipeline: a content-moderation classifier as an MLOps pipeline, on SageMaker and on this machine.

    python examples/pipeline.py               # prints the SageMaker pipeline (no account needed), then runs it here
    python examples/pipeline.py --no-local    # only prints the SageMaker pipeline
    python examples/pipeline.py --upsert      # also creates it in SageMaker and starts an execution
                                              # (needs AWS credentials, a region, SAGEMAKER_ROLE and SFT_BUCKET)

The moderation label: a newsroom publishes wire stories as they come, except political ones, which an editor reviews
first (BBC News articles, bundled; no toxicity data set is). The local run trains a small model (2 of MiniLM's 6
layers) in about a minute on 2 CPU cores, evaluates it, and registers it in ./sft-registry when it clears the
threshold.
"""

from __future__ import annotations

import argparse
import json
import os

import sagefinetune as sft


def moderation_job() -> sft.Job:
    data = sft.Dataset.example("bbc_news").sample(train=500, test=250, seed=7)
    return (
        sft.Job.from_dataset(data)
        .map_labels({"politics": "needs-review", "business": "publish", "entertainment": "publish",
                     "sports": "publish", "tech": "publish"})
        .model("sentence-transformers/all-MiniLM-L6-v2", num_hidden_layers=2)
        .hyperparameters(epochs=3, batch_size=16, learning_rate=2e-4, max_length=64)
    )


def show(definition: str) -> None:
    """The steps and parameters of a SageMaker Pipelines definition (the whole JSON goes to a file)."""
    parsed = json.loads(definition)

    def walk(steps: list[dict], indent: str) -> None:
        for step in steps:
            print(f"{indent}{step['Name']:<17} {step['Type']}")
            for branch in ("IfSteps", "ElseSteps"):
                if step["Arguments"].get(branch):
                    print(f"{indent}  {'if true' if branch == 'IfSteps' else 'else'}:")
                    walk(step["Arguments"][branch], indent + "    ")

    walk(parsed["Steps"], "  ")
    for p in parsed["Parameters"]:
        print(f"  parameter {p['Name']:<20} {p['Type']:<7} default {p['DefaultValue']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-local", action="store_true", help="do not run the pipeline on this machine")
    parser.add_argument("--upsert", action="store_true", help="create the pipeline in SageMaker and start it")
    args = parser.parse_args()

    pipe = moderation_job().pipeline(
        "moderation", instance="ml.g5.xlarge", condition={"eval_f1": 0.85}, register="moderation-models",
        spot=True, max_run="2h", bucket=os.environ.get("SFT_BUCKET"), tags={"project": "sagefinetune-example"},
    )
    print(pipe, "\n")
    definition = pipe.definition()  # pure: the SDK's workflow objects, rendered without an account
    with open("moderation-pipeline.json", "w") as fh:
        fh.write(json.dumps(json.loads(definition), indent=2))
    print("SageMaker pipeline definition (the whole JSON is in moderation-pipeline.json):")
    show(definition)

    if args.upsert:
        pipe.upsert(role=os.environ.get("SAGEMAKER_ROLE"))
        execution = pipe.start()
        print(execution, "\nfollow it with execution.wait(), or in the SageMaker console (Pipelines)")
    if args.no_local:
        return

    print("\nthe same graph on this machine:")
    try:
        run = pipe.run_local()
    except sft.PipelineError as err:  # the model missed the threshold: nothing was registered
        print(err)
        return
    print(run)
    print(f"macro F1 {run.metrics['eval_f1']:.3f}, accuracy {run.metrics['eval_accuracy']:.3f}; "
          f"registered as version {run.version.version} ({run.version.status}) in {run.version.model}")
    table = sft.Registry("moderation-models").table()
    print(table[["version", "status", "created", "eval_f1", "eval_accuracy"]].to_string(index=False))


if __name__ == "__main__":
    main()
