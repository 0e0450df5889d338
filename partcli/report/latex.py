"""The report's tables as LaTeX for a paper: booktabs rules (``\\usepackage{booktabs}``), text escaped so that model
and dataset names compile with pdflatex (no unicode package needed)."""
from __future__ import annotations

import re

from partcli.report.tables import Table

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
            ">": r"\textgreater{}"}
_UNICODE = {"±": r"$\pm$", "–": "--", "—": "---", "β": r"$\beta$", "ε": r"$\varepsilon$", "ℓ": r"$\ell$",
            "∞": r"$\infty$", "×": r"$\times$", "−": "$-$", "✓": r"$\checkmark$", "·": r"$\cdot$"}
_PATTERN = re.compile("|".join(re.escape(c) for c in (*_SPECIAL, *_UNICODE)))


def escape(text: str) -> str:
    """Plain text → LaTeX text: special characters escaped, the symbols the report uses in math mode."""
    return _PATTERN.sub(lambda m: _SPECIAL.get(m.group(), _UNICODE.get(m.group())), str(text))


def latex_table(table: Table, caption: str, label: str) -> str:
    """A ``table`` float: first column left-aligned (names), the others centred."""
    spec = "l" + "c" * (len(table.header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{escape(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(map(escape, table.header)) + r" \\", r"\midrule"]
    lines += [" & ".join(map(escape, row)) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
