"""Model cards rendered for reviewers: CommonMark with raw HTML disabled.

A model card is written by whoever pushed the model. markdown-it-py escapes every raw HTML
tag when ``html`` is off and refuses ``javascript:``/``vbscript:``/``file:``/``data:``
link targets; images become plain links (nothing is fetched from other hosts, and the
console's Content-Security-Policy would block it anyway). YAML front matter is shown as
text, not interpreted.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token

MAX_CARD_BYTES = 512 * 1024


def _md() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False},
                    renderer_cls=RendererHTML)
    renderer = RendererHTML(md)
    md.enable("table")
    md.enable("strikethrough")

    def image(_self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        t = tokens[idx]
        src = md.normalizeLinkText(str(t.attrGet("src") or ""))
        alt = renderer.renderInlineAsText(t.children or [], options, env)
        return f'<span class="card-image">[image: {escapeHtml(alt)} {escapeHtml(src)}]</span>'


    def link_open(_self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("image", image)
    md.add_render_rule("link_open", link_open)
    return md


_MD = _md()


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(YAML front matter or None, body)."""
    if text.startswith("---\n") or text.startswith("---\r\n"):
        end = text.find("\n---", 3)
        if end >= 0:
            after = text.find("\n", end + 4)
            return text[4:end], text[after + 1:] if after >= 0 else ""
    return None, text


def render_card(data: bytes) -> tuple[str | None, str, bool]:
    """(front matter text, safe HTML of the body, truncated?)."""
    truncated = len(data) > MAX_CARD_BYTES
    text = data[:MAX_CARD_BYTES].decode("utf-8", errors="replace")
    meta, body = split_front_matter(text)
    return meta, _MD.render(body), truncated
