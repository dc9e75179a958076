"""The stages of :func:`models.recon.pipeline.reconstruct_study`, in order.

Each stage is one function that returns a small frozen dataclass, the next stage's input:
``encode`` (:class:`~models.recon.stages.encode.EncodedViews`), ``anchor``
(:class:`~models.recon.stages.anchor.AnchoredED`), ``motion``
(:class:`~models.recon.stages.motion.FrameLatents`), ``mesh``
(:class:`~models.recon.stages.mesh.MeshedSequence`), then ``assemble`` builds the
:class:`~models.recon.result.ReconResult`. Progress, cancellation and timings stay with the pipeline.
"""
