"""Reports rendered from models: one renderer (Jinja2) for static HTML with inline SVG charts, plus CSV and JSON."""
