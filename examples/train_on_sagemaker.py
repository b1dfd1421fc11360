"""Train on SageMaker: two ml.g5.12xlarge nodes (8 A10G GPUs), managed spot, checkpoints that resume.

    python examples/train_on_sagemaker.py            # prints the plan; launches only with --launch
    python examples/train_on_sagemaker.py --launch   # needs AWS credentials, a region, SAGEMAKER_ROLE and SFT_BUCKET

Without credentials (or without --launch) it prints the plan: image, processes, channels, spot and checkpoint
settings and the cost estimate. Nothing is uploaded and nothing is billed.
"""

from __future__ import annotations

import argparse
import os

import sagefinetune as sft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launch", action="store_true", help="launch the job (costs money)")
    parser.add_argument("--instance", default="ml.g5.12xlarge")
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args()

    job = (
        sft.Job.from_dataset(sft.Dataset.example("imdb"))
        .map_labels(sft.LabelMap.names(["negative", "positive"]))
        .hyperparameters(epochs=2, batch_size=32, learning_rate=5e-5, max_length=256)
    )
    options = dict(spot=True, max_run="3h", bucket=os.environ.get("SFT_BUCKET"), tags={"project": "sagefinetune-example"})
    print(job.plan(instance=args.instance, nodes=args.nodes, **options))

    import boto3

    configured = boto3.Session().get_credentials() is not None and os.environ.get("SAGEMAKER_ROLE")
    if not args.launch or not configured:
        print("\nnot launched:", "pass --launch to start it" if configured else
              "no AWS credentials or SAGEMAKER_ROLE here (set them, and SFT_BUCKET, to launch)")
        return
    run = job.fit(instance=args.instance, nodes=args.nodes, logs=True, **options)
    print(run.metrics, run.cost, sep="\n")
    print(run.predictor().predict(["a gripping, beautifully shot film", "two hours I will never get back"]))


if __name__ == "__main__":
    main()
