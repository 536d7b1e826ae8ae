"""Influence workbench: the Streamlit entry point (pages live in pages/)."""

import streamlit as st

st.set_page_config(page_title="Influence Workbench", layout="wide")
st.title("Influence Workbench")
st.write("Find the training samples that hurt your model, inspect them, fix them, export a cleaned split.")
