"""Model loading and batched generation, shared by evaluation, serving, the agents and training."""
