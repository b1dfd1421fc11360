"""Tuning: Optuna here, SageMaker automatic model tuning there, one result."""
