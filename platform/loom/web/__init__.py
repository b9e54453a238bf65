"""The web application: generated pages for every object, served with HTMX."""
from .app import create_app

__all__ = ["create_app"]
