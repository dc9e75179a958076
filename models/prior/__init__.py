"""Shape prior: conditional SDF decoder f(z, x) + Epipolar Mask Encoder, training and checkpoints.

Modules: ``config`` (PriorConfig, TrainConfig), ``decoder`` (SDFDecoder), ``encoder``
(EpipolarMaskEncoder), ``grid`` (masks_to_grid), ``model`` (ShapePrior), ``checkpoint``
(save_prior, load_prior, load_default_prior, DEFAULT_CHECKPOINT), ``data`` (the one
training-data adapter: stand-in ellipsoids or the cohort), ``standin`` (analytic ellipsoids),
``pool`` (cached SDF/mask pool), ``batches``, ``losses`` (sdf_loss, eikonal_loss), ``train`` (train_prior), ``run``
(train_and_save), ``evaluate`` (evaluate_prior), ``sizing`` (decoder size trade-off).
Importing this package does not import torch; import the submodules. See docs/prior.md.
"""
