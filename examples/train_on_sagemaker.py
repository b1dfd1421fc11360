"""Train on SageMaker: the cheapest setup that meets a deadline and a budget, managed spot, checkpoints that resume.

    python examples/train_on_sagemaker.py              # prints the plan; launches only with --launch
    python examples/train_on_sagemaker.py --instance ml.g5.12xlarge --nodes 2   # a setup of your choice instead
    python examples/train_on_sagemaker.py --launch     # needs AWS credentials, a region, SAGEMAKER_ROLE and SFT_BUCKET

The plan is searched: every GPU instance type x 1, 2, 4 or 8 nodes x on demand or spot, each timed by the library's
calibrated estimate, and the cheapest that finishes within --deadline for at most --budget is planned. For the bundled
IMDB reviews (20,000 rows, 2 epochs) that is one GPU on spot: start-up (about 6 minutes) is most of the run, so more
GPUs buy seconds for many times the money. ``--instance ml.g5.12xlarge --nodes 2`` (8 A10G GPUs) plans that setup
instead, and its advice says so: about 17x the cost of the cheapest for 13% less time.

Without credentials (or without --launch) it prints the plan: image, processes, channels, spot and checkpoint
settings, the cost estimate and the search. Nothing is uploaded and nothing is billed.
"""

from __future__ import annotations

import argparse
import os

import sagefinetune as sft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launch", action="store_true", help="launch the job (costs money)")
    parser.add_argument("--deadline", default="30m", help="the search's deadline (default 30m)")
    parser.add_argument("--budget", type=float, default=2.0, help="the search's budget in USD (default 2)")
    parser.add_argument("--instance", help="plan this instance type instead of searching (spot, --nodes nodes)")
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()

    job = (
        sft.Job.from_dataset(sft.Dataset.example("imdb"))
        .map_labels(sft.LabelMap.names(["negative", "positive"]))
        .hyperparameters(epochs=2, batch_size=32, learning_rate=5e-5, max_length=256)
    )
    options = dict(max_run="3h", bucket=os.environ.get("SFT_BUCKET"), tags={"project": "sagefinetune-example"})
    if args.instance:
        plan = job.plan(instance=args.instance, nodes=args.nodes, spot=True, **options)
        print(plan)
    else:
        plan = job.plan(deadline=args.deadline, budget=args.budget, **options)
        print(plan)
        print("\nthe five cheapest setups that meet it, of", len(plan.candidates))
        print(plan.candidates.head(5)[["instance", "nodes", "spot", "seconds", "cost", "why_not"]].round(2).to_string())

    import boto3

    configured = boto3.Session().get_credentials() is not None and os.environ.get("SAGEMAKER_ROLE")
    if not args.launch or not configured:
        print("\nnot launched:", "pass --launch to start it" if configured else
              "no AWS credentials or SAGEMAKER_ROLE here (set them, and SFT_BUCKET, to launch)")
        return
    assert plan.sagemaker is not None
    run = job.fit(instance=plan.instance, nodes=plan.nodes, spot=plan.sagemaker.spot, logs=True, **options)
    print(run.metrics, run.cost, sep="\n")
    print(run.predictor().predict(["a gripping, beautifully shot film", "two hours I will never get back"]))


if __name__ == "__main__":
    main()
