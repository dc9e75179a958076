"""Outputs of a reconstruction: report.json (``echo4d-report/1``), mesh.glb, meshes/*.vtp + .pvd,
ed/es.ply and preview.png. Entry point: :func:`models.export.writer.write_outputs`.

Submodules are imported on use (``from models.export.writer import write_outputs``) so that
importing this package stays light (no matplotlib, no pygltflib)."""
