"""Training on Ray Train (TorchTrainer, DDP)."""
