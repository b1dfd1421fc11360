"""Model runtime: loading a model folder (PyTorch / ONNX), predict, export, model card, curves, diagnose."""
