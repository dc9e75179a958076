"""Test-time reconstruction: SDF rendering, shape/probe optimisation, motion, Radial SDF Alignment.

``pipeline.reconstruct_study`` runs the stages of ``stages/`` (encode, anchor, motion, mesh, assemble);
``shape_model.ReconPrior`` is what they need from a shape prior.
"""
