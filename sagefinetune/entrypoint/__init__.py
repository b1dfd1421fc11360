"""The scripts SageMaker and the local backend both execute.

``train.py`` is uploaded as the training job's entry point; ``contract.py`` (no third-party imports) holds
what the library and the script must agree on: hyperparameter names and types, SageMaker paths, and the
metric line format that metric definitions parse.
"""
