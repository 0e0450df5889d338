"""The report as one self-contained web page: its Markdown rendered to HTML (CommonMark with tables, by
markdown-it-py, which rich already installs) and each figure embedded as a base64 PNG, so the page is one file
that opens in a browser, mailed or uploaded on its own."""
from __future__ import annotations

import base64
import html
import re

from markdown_it import MarkdownIt

STYLE = """body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}th,td{border:1px solid #bbb;padding:.25rem .5rem}
th{background:#f0f0f0}td{text-align:right}td:first-child{text-align:left}img{max-width:100%}
code{background:#f4f4f4;padding:0 .2rem}"""


def html_page(markdown: str, images: dict[str, bytes], title: str) -> str:
    """``markdown`` as a page; an image linked by a file name in ``images`` is replaced by its PNG bytes inline."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)

    def embed(match: re.Match) -> str:
        name = html.unescape(match.group(1))
        if name not in images:
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(images[name]).decode("ascii")}"'

    body = re.sub(r'src="([^"]*)"', embed, body)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n{body}</body>\n</html>\n")
