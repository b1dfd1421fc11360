"""The SageMaker backends: training jobs, endpoints, batch transform, the model registry and the tuner, through the SDK
and boto3. Each takes a plan and returns plain records."""
