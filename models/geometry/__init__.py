"""LV geometry kernel: canonical frame, apical planes and probe poses, mesh operations."""
