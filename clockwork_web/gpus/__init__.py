"""GPU models and their specs."""
