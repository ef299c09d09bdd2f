"""resviz dashboard from a checkout: ``streamlit run app.py`` (``make run``).

The dashboard itself is :mod:`resviz.dashboard.app`, inside the package, so an installed resviz
serves it too (``resviz dashboard``). This file hands Streamlit the same server app: imported by
``streamlit run`` it names ``app``, whose script is the package's; run as a script (as
``streamlit.testing`` does) it draws the page.
"""

from __future__ import annotations

from resviz.dashboard import warmup
from resviz.extras import missing

try:
    import streamlit as st
except ImportError as exc:  # Streamlit comes with the 'dashboard' extra
    raise missing(exc, "dashboard", "the dashboard") from None

if __name__ == "__main__":
    import runpy

    runpy.run_module("resviz.dashboard.app", run_name="__main__")
else:
    from resviz.dashboard.app import SCRIPT

    app = st.App(SCRIPT, lifespan=warmup.lifespan)
