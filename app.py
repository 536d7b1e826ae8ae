"""Influence Workbench: the Streamlit entry point. Routes to the pages in pages/ and keeps a status sidebar.

Run: ``python -m streamlit run app.py``. State lives in the workspace folder (INFLUENCE_WORKSPACE, default
./workspace): the current selection, cached models and scores, the decision log and exports.
"""

from __future__ import annotations

import streamlit as st

from influence_core.session import workspace_root
from pages._common import PAGES, ROOT, plain, selection, status

st.set_page_config(page_title="Influence Workbench", page_icon=str(ROOT / "assets" / "icon.svg"), layout="wide")
st.logo(str(ROOT / "assets" / "logo.svg"), size="large", icon_image=str(ROOT / "assets" / "icon.svg"))

_PAGES = [
    ("data", "Data", ":material/database:"),
    ("model", "Model", ":material/model_training:"),
    ("scores", "Scores", ":material/leaderboard:"),
    ("explore", "Explore", ":material/scatter_plot:"),
    ("review", "Review", ":material/fact_check:"),
    ("export", "Export", ":material/download:"),
    ("evaluate", "Evaluate", ":material/query_stats:"),
]
# Build the navigation from the page files present (Evaluate comes from another part of the project).
pages = [st.Page(PAGES[key], title=title, icon=icon, default=(key == "data"))
         for key, title, icon in _PAGES if (ROOT / PAGES[key]).exists()]
current = st.navigation(pages)

info = status(selection())
with st.sidebar:
    st.caption("CURRENT WORK")
    st.markdown(f"**Data set** · {plain(info['dataset'])}")
    if info["model"]:
        acc = info.get("val_accuracy")
        st.markdown(f"**Model** · {plain(info['model'])}" + (f"  \nvalidation accuracy {acc:.1%}" if acc is not None else ""))
    else:
        st.markdown("**Model** · none yet")
    st.markdown("**Scores** · " + (plain(", ".join(info["scores"])) if info["scores"] else "none yet"))
    pending = "" if info["pending"] is None else f" · {info['pending']} flagged to review"
    st.markdown(f"**Decisions** · {info['decisions']} made{pending}")
    st.caption(f"Workspace: {plain(workspace_root())}")
    st.caption("Scores: lower = more detrimental.")

current.run()
