"""Backends act on a plan: ``local`` runs the entry point on this machine, ``sagemaker`` launches a training job."""
