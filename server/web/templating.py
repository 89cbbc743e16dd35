"""Jinja2 environment for the HTML pages (autoescaping on: model outputs stay inert text)."""

from pathlib import Path

from jinja2_fragments.fastapi import Jinja2Blocks

from server import __version__

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"

templates = Jinja2Blocks(directory=str(TEMPLATES_DIR))
templates.env.globals["version"] = __version__
