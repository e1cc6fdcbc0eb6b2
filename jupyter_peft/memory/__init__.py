"""Memory of one training step (work in progress)."""
