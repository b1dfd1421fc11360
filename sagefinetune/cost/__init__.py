"""Cost (pure): workload, the throughput model, the estimate, its calibration, this machine's measured speed."""
