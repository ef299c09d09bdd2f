"""Per-session glue: keep widget values across pages, mirror them into the URL, read uploads.

Streamlit forgets a widget's session-state value in any run where the widget is not drawn; the
page-specific widgets disappear whenever the page changes, so :func:`keep` re-assigns the view keys
at the top of every run (the documented way to make them persist).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

from resviz.dashboard import compute, state
from resviz.errors import ResvizError
from resviz.extras import missing

try:
    import streamlit as st
except ImportError as exc:  # Streamlit comes with the 'dashboard' extra
    raise missing(exc, "dashboard", "the dashboard") from None

_DIGESTS = "_resviz_digests"


def keep(session: MutableMapping[Any, Any]) -> None:
    for key in state.VIEW_KEYS:
        if key in session:
            session[key] = session[key]


def sync_url(view: state.ViewState, launch: Sequence[str] = ()) -> None:
    """Write the shortest query string that reproduces ``view`` (only when it changed)."""
    wanted = state.to_params(view.values(), launch)
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def read_upload(subject: state.Subject, uploaded: Any) -> state.Upload | None:
    """Check an uploaded checkpoint against ``subject``'s model; show a one-line error and ignore it if bad.

    The content digest is remembered per upload, so a large file is hashed once, not every rerun.
    """
    if uploaded is None:
        return None
    data = uploaded.getvalue()
    digests: dict[str, str] = st.session_state.setdefault(_DIGESTS, {})
    file_id = str(getattr(uploaded, "file_id", uploaded.name))
    key = digests.get(file_id) or compute.digest(data)
    digests[file_id] = key
    try:
        count = compute.check_checkpoint(subject.key, key, uploaded.name, data)
    except ResvizError as exc:
        st.error(str(exc))
        return None
    st.sidebar.caption(f"{uploaded.name}: {count} tensors match {subject.name}; traces use these weights.")
    return state.Upload(uploaded.name, key, data)
