"""The web dashboard, served by the API (not built yet)."""
