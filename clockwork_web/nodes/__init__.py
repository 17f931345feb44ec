"""Nodes: listing and one node, filtered by the clusters the user may see."""
