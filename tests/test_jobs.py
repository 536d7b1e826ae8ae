"""Background jobs: results, progress, cancellation (cooperative and immediate), failures as one line."""

import threading

from influence_core.errors import InfluenceError
from influence_core.jobs import get_job, start_job


def test_result_and_progress_log():
    def work(handle):
        for i in range(3):
            handle.report((i + 1) / 3, f"step {i}", record={"epoch": i})
        return 42

    job = start_job("t-result", "Test", work).wait(10)
    assert job.state == "done" and job.result == 42
    snap = job.snapshot()
    assert snap["fraction"] == 1.0 and snap["message"] == "step 2" and [r["epoch"] for r in snap["log"]] == [0, 1, 2]


def test_cancel_stops_a_loop_and_a_second_start_returns_the_running_job():
    started = threading.Event()

    def work(handle):
        started.set()
        n = 0
        while not handle.should_stop():
            n += 1
            handle.check()
        return n

    job = start_job("t-cancel", "Test", work)
    started.wait(5)
    assert start_job("t-cancel", "Other", lambda h: 0) is job
    job.cancel()
    job.wait(10)
    assert job.state == "cancelled" and get_job("t-cancel") is job


def test_failures_become_one_line_messages():
    def fail(handle):
        raise InfluenceError("the model has 3 outputs\n but 2 classes")

    job = start_job("t-fail", "Test", fail).wait(10)
    assert job.state == "failed" and job.error == "the model has 3 outputs but 2 classes"
    job = start_job("t-crash", "Test", lambda h: 1 / 0).wait(10)
    assert job.state == "failed" and job.error.startswith("ZeroDivisionError")


def test_a_full_disk_in_a_job_is_one_line_without_the_server_path():
    import errno
    import os

    def work(handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/srv/workspace/models/abc/model.safetensors")

    job = start_job("t-disk", "Test", work).wait(10)
    assert job.state == "failed"
    assert job.error == "cannot write to the workspace: the disk is full on the server; ask its administrator"
