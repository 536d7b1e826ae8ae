"""Background jobs: results, progress, cancellation (cooperative and immediate), failures as one line."""

import json
import os
import threading
from pathlib import Path

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


def test_a_process_that_exits_during_a_job_stops_it_cleanly(tmp_path):
    """Issue 21: stopping the server during a job printed "terminate called without an active exception" and
    aborted (a daemon thread still inside torch at interpreter exit). The job is stopped and waited for; its record
    says "interrupted", so a restarted server offers to resume it."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import time, torch
        from influence_core import jobs

        def work(handle):
            x = torch.randn(300, 300, requires_grad=True)
            while True:
                handle.check()
                (x @ x).sum().backward()
                torch.linalg.eigvalsh(torch.randn(200, 200, dtype=torch.float64))

        jobs.start_job("spin", "Spin", work, store={str(tmp_path)!r})
        time.sleep(1.0)  # the job is inside torch now
        print("exiting", flush=True)
    """)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert "terminate called" not in done.stderr and done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert "exiting" in done.stdout
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert record["state"] == "interrupted"
