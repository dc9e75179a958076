"""Benchmark metrics: surface distances, volumetric and 2D overlap, rigid alignment
(``models.bench.metrics``) and the clinical method of disks (``models.bench.simpson``).
numpy/scipy only (no torch)."""
