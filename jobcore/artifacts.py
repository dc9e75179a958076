"""The artifacts a succeeded job has: public name → (object name under ``outputs/{job_id}/``, content type).

The worker uploads them under these names; the API serves them under the public names.
"""

from __future__ import annotations

ARTIFACTS: dict[str, tuple[str, str]] = {
    # public name: (object name under outputs/{job_id}/, content type)
    "report.json": ("report.json", "application/json"),
    "mesh.glb": ("mesh.glb", "model/gltf-binary"),
    "meshes": ("meshes.zip", "application/zip"),
    "ed.ply": ("ed.ply", "model/x-ply"),
    "es.ply": ("es.ply", "model/x-ply"),
    "preview.png": ("preview.png", "image/png"),
    "views.json": ("views.json", "application/json"),  # masks + fitted contours per frame (the web viewer)
    # DICOM results (also served together by GET /v1/jobs/{id}/dicom)
    "sr.dcm": ("dicom/sr.dcm", "application/dicom"),
    "mesh-stl.dcm": ("dicom/mesh-stl.dcm", "application/dicom"),
    "cine-sc.dcm": ("dicom/cine-sc.dcm", "application/dicom"),
    "preview-sc.dcm": ("dicom/preview-sc.dcm", "application/dicom"),
}
DICOM_ARTIFACTS = ("sr.dcm", "mesh-stl.dcm", "cine-sc.dcm", "preview-sc.dcm")
DOWNLOAD_NAMES = {"meshes": "meshes.zip"}
