"""Test-time reconstruction: SDF rendering, shape/probe optimisation, motion, Radial SDF Alignment."""
