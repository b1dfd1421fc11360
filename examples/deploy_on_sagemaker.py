"""Serve a model on SageMaker for a working day: it scales between 1 and 4 instances with its load, and deletes
itself after 8 hours whatever happens to this script.

    python examples/deploy_on_sagemaker.py                    # prints the plan; deploys only with --deploy
    python examples/deploy_on_sagemaker.py --deploy MODEL     # MODEL: s3://.../model.tar.gz, a model folder or a Hub id

Deploying needs AWS credentials, a region, SAGEMAKER_ROLE (the endpoint's execution role) and SFT_SCHEDULER_ROLE (a
role that EventBridge Scheduler may assume to delete it: see "Endpoints that end" in docs/sagemaker-endpoints.rst).
Without them, or without --deploy, it prints what would be created and what it costs. Nothing is billed.
"""

from __future__ import annotations

import argparse
import os

import sagefinetune as sft
from sagefinetune.plans.deploy import model_ref, plan_deploy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="me/imdb-minilm", help="the model to serve")
    parser.add_argument("--deploy", action="store_true", help="create the endpoint (costs money while it exists)")
    parser.add_argument("--instance", default="ml.m5.xlarge")
    args = parser.parse_args()

    options = dict(instance=args.instance, autoscale=(1, 4), ttl="8h", tags={"project": "sagefinetune-example"})
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    print(plan_deploy(model_ref(args.model), region=region, **options))  # pure: checks every option, no AWS call

    import boto3

    configured = (boto3.Session().get_credentials() is not None and os.environ.get("SAGEMAKER_ROLE")
                  and os.environ.get("SFT_SCHEDULER_ROLE"))
    if not args.deploy or not configured:
        print("\nnot deployed:", "pass --deploy to create it" if configured else
              "no AWS credentials, SAGEMAKER_ROLE or SFT_SCHEDULER_ROLE here (set them to deploy)")
        return
    with sft.Endpoint.from_model(args.model, **options) as ep:   # deleted at the end of the block, or after 8 hours
        print(ep, "expires at", ep.expires_at, "scales", ep.autoscale)
        print(ep.predict(["a gripping, beautifully shot film", "two hours I will never get back"]))
        print(sft.Endpoint.list()[["name", "instance_count", "expires_at", "autoscale", "cost_so_far"]])


if __name__ == "__main__":
    main()
