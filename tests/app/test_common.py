"""pages/_common.py: the error guard every page body runs in."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import shown


def _page_that_raises(errno_name: str) -> None:
    import errno
    import os

    from pages._common import guarded

    def body():
        code = getattr(errno, errno_name)
        raise OSError(code, os.strerror(code), "/srv/workspace/projects/p/state.json")

    guarded(body)


@pytest.mark.parametrize("code, reason", [("ENOSPC", "the disk is full"), ("EROFS", "the disk is read-only"),
                                          ("EACCES", "no permission to write there")])
def test_a_stray_full_or_read_only_disk_error_is_one_line_without_server_paths(code, reason):
    at = AppTest.from_function(_page_that_raises, args=(code,)).run()
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [f"cannot write to the workspace: {reason} on the server; ask its administrator"]
