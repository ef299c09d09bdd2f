"""The pieces behind ``streamlit run app.py``.

* :mod:`resviz.dashboard.state`: the sidebar's values, their defaults per preset and the query
  parameters that make a view shareable as a URL.
* :mod:`resviz.dashboard.compute`: cached computations that return plain records, so Streamlit
  can keep them across reruns and sessions without ever holding a model with hooks.
* ``pages_*``: one function per page; ``app.py`` only lays out widgets and calls them.
"""

from __future__ import annotations

PAGES: tuple[str, ...] = ("Architecture", "Layers", "Cost", "Activations", "Gradient flow", "Compare", "Studies")
