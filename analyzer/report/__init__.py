"""Plots and the HTML report: time-sequence graphs, ladder diagrams, a capture overview,
the RFC 9293 state diagram, and one self-contained HTML page with all of them.

Every plotting function returns a :class:`matplotlib.figure.Figure` (drawing on a given
``ax`` when one is passed) and never touches pyplot's global state. matplotlib and numpy
are imported only when a function is called, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["fsm_plot", "ladder_plot", "overview_plot", "sequence_plot", "write_html_report"]

if TYPE_CHECKING:
    from .fsm_diagram import fsm_plot
    from .html import write_html_report
    from .ladder import ladder_plot
    from .overview import overview_plot
    from .sequence import sequence_plot

_HOMES = {"fsm_plot": "fsm_diagram", "ladder_plot": "ladder", "overview_plot": "overview",
          "sequence_plot": "sequence", "write_html_report": "html"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'analyzer.report' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
