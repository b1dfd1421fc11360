"""Backends act on a plan and return plain records (:mod:`sagefinetune.backends.records`), never the fluent objects:
``local`` runs the entry point on this machine, ``sagemaker/`` talks to SageMaker (training jobs, endpoints, batch
transform, the model registry, the tuner), ``local_registry`` keeps registered versions in a folder."""
