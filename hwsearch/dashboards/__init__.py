"""The web dashboard: static HTML, CSS and plain JavaScript under ``static/``, served by the
API at ``/dashboard/``; nothing to build."""
