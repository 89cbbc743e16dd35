"""Markdown for text people write (project instructions): CommonMark with raw HTML disabled."""

from markdown_it import MarkdownIt

# "js-default" escapes raw HTML and refuses javascript:/data: links; typographer off keeps text as typed.
_md = MarkdownIt("js-default", {"linkify": False, "typographer": False})


def render_markdown(text: str) -> str:
    """HTML for Markdown text, with any raw HTML in it escaped."""
    html: str = _md.render(text)
    return html
