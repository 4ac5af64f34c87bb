"""Reports: RUN.json (the record), Markdown, and HTML with charts."""
