"""Clusters: the configured ones with the freshness of their data."""
