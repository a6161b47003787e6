"""Reviewer previews: a notebook rendered to static HTML with nbconvert (no execution; HTML outputs sanitised), so
that output checkers read what the checks read."""

from __future__ import annotations

from pathlib import Path


def render_notebook(path: Path) -> str:
    """The notebook at `path` as a standalone HTML page. Raises ValueError for a file nbformat cannot read."""
    import nbformat
    from nbconvert import HTMLExporter

    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises many types for bad input
        raise ValueError(f"{path.name}: not a readable notebook ({type(exc).__name__})") from None
    exporter = HTMLExporter(template_name="lab", sanitize_html=True)
    body, _ = exporter.from_notebook_node(notebook)
    return body
