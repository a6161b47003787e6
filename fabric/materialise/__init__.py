"""Materialisation of project views: the plan (who is in, under which pseudonym), per-modality de-identifying
copiers (clinical, imaging, genomics), the build and publish of a view (view.py), and file helpers."""
