"""Usage statistics: CPU-hours and GPU-hours over a period."""
