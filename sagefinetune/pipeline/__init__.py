"""MLOps pipelines generated from a Job: train -> evaluate -> condition -> register (-> deploy), on SageMaker and here.

    spec.py        Pipeline (immutable, checked when made by Job.pipeline) and Deployment
    conditions.py  the gate: a threshold per metric, the same check on SageMaker and here
    parameters.py  execution parameters, checked before anything starts
    sagemaker.py   definition() (pure), upsert(), start(); graph.py builds the SDK's steps
    execution.py   PipelineExecution: status, steps, wait
    local.py       run_local(): the same graph on this machine, a folder per run, finished steps not repeated

Importing this package imports no SageMaker SDK, torch or transformers.
"""

from sagefinetune.pipeline.conditions import Condition
from sagefinetune.pipeline.execution import PipelineExecution
from sagefinetune.pipeline.local import PipelineRun
from sagefinetune.pipeline.spec import Deployment, Pipeline

__all__ = ["Pipeline", "PipelineExecution", "PipelineRun", "Condition", "Deployment"]
