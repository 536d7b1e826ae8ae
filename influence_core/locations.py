"""Where the workbench keeps its own files: the workspace (cached models and scores, the projects, the server's
``server.toml``). A leaf module, so the server settings and the data loaders both read it without an import cycle."""

from __future__ import annotations

import os
from pathlib import Path

ENV_WORKSPACE = "INFLUENCE_WORKSPACE"


def workspace_root() -> Path:
    """The workspace: ``$INFLUENCE_WORKSPACE``, else ./workspace (resolved against the current folder)."""
    return Path(os.environ.get(ENV_WORKSPACE) or "workspace").resolve()
