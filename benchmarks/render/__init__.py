"""The formats a table model is rendered in: one small module each (Markdown, CSV, LaTeX, the interactive HTML page)."""
