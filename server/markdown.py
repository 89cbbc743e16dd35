"""Markdown for text people write (project instructions): CommonMark with raw HTML disabled.

Rendering is not linear in the worst case: markdown-it looks for the `]` that closes each `[`
up to the end of its paragraph, so a paragraph of unclosed `[` or `![` (or brackets mixed with
emphasis markers) costs time quadratic in its length (20,000 characters of `![`: about 10 s with
markdown-it's default nesting limit of 100). So instructions are bounded (`MAX_INSTRUCTIONS`),
rendered once when saved (in a worker thread, off the event loop) and stored as HTML; pages and
the API read the stored HTML. CommonMark's own nesting limit (20) cuts the bracket search short,
and 20,000 characters of any adversarial input render in about a second
(`tests/projects/test_instructions.py`).
"""

import asyncio

from markdown_it import MarkdownIt

MAX_INSTRUCTIONS = 20_000  # characters: a long guideline (about 3,000 words) fits

# "js-default" escapes raw HTML and refuses javascript:/data: links; typographer off keeps text as typed.
# maxNesting 20 (CommonMark's preset value) keeps real documents whole (lists nested five deep with
# links and emphasis inside) while bounding the recursion of the link-label search.
_md = MarkdownIt("js-default", {"linkify": False, "typographer": False, "maxNesting": 20})


def render_markdown(text: str) -> str:
    """HTML for Markdown text, with any raw HTML in it escaped."""
    html: str = _md.render(text)
    return html


async def render_off_loop(text: str) -> str:
    """`render_markdown` in a worker thread: a long text never holds up other requests."""
    return await asyncio.to_thread(render_markdown, text)
