"""Plans (pure, no I/O): the training plan and its SageMaker half, the deploy/transform plan, the tuning space."""
