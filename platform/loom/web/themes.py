"""Templates and static files from themes, overridable by packs.

Search order for a template: each metadata layer's `templates/` folder, latest layer
first (overlay, then packs), then the application's theme, then the default theme.
Pages look for `objects/<object>/<page>.html` before `<page>.html`, so a theme or a
pack can restyle one object's pages without touching the others.
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app
from jinja2 import BaseLoader, FileSystemLoader, TemplateNotFound


def theme_dirs(app, kind: str) -> list[Path]:
    holder = app.extensions.get("loom")
    runtime = holder.runtime if holder else None
    themes = Path(app.config["LOOM_THEMES"])
    dirs = []
    if runtime is not None:
        for _name, root in reversed(runtime.spec.layers):
            candidate = Path(root) / kind
            if candidate.is_dir() and "metadata/system" not in str(candidate):
                dirs.append(candidate)
        if runtime.spec.theme != "default":
            dirs.append(themes / runtime.spec.theme / kind)
    dirs.append(themes / "default" / kind)
    return [d for d in dirs if d.is_dir()]


class ThemeLoader(BaseLoader):
    def __init__(self, app):
        self.app = app

    def get_source(self, environment, template):
        for directory in theme_dirs(self.app, "templates"):
            try:
                return FileSystemLoader(str(directory)).get_source(environment, template)
            except TemplateNotFound:
                continue
        raise TemplateNotFound(template)

    def list_templates(self):
        found = set()
        for directory in theme_dirs(self.app, "templates"):
            found.update(FileSystemLoader(str(directory)).list_templates())
        return sorted(found)


def page(name: str, obj=None) -> list[str]:
    """Candidate templates for a page, most specific first."""
    return ([f"objects/{obj.name}/{name}"] if obj is not None else []) + [name]


def static_file(filename: str) -> Path | None:
    for directory in theme_dirs(current_app, "static"):
        candidate = (directory / filename).resolve()
        if candidate.is_file() and directory.resolve() in candidate.parents:
            return candidate
    return None
