"""Benchmark grids: cells over instance, nodes and data size; planned, run (locally or on SageMaker), tabled and drawn."""
