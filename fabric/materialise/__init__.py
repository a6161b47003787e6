"""Materialisation of project views: per-modality de-identifying copiers (imaging, genomics) and file helpers."""
