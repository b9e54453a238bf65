"""WSGI entry for production servers: `gunicorn -w 4 'loom.web.wsgi:app'`."""
from . import create_app

app = create_app()
