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


def test_a_full_disk_in_a_job_is_one_line_without_the_server_path():
    import errno
    import os

    def work(handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/srv/workspace/models/abc/model.safetensors")

    job = start_job("t-disk", "Test", work).wait(10)
    assert job.state == "failed"
    assert job.error == "cannot write to the workspace: the disk is full on the server; ask its administrator"


# --------------------------------------------------------------------- two servers on one workspace
def _jobs_in_another_server(store: str, folder: str) -> None:
    """Another server process: a job that finishes when the file ``release-1`` appears, then one during which the
    process dies at ``release-2``; ``started-N`` says each job's record is written."""
    import os
    import time
    from pathlib import Path

    from influence_core.jobs import start_job

    def wait_for(name: str) -> None:
        while not (Path(folder) / name).exists():
            time.sleep(0.02)

    for n in (1, 2):
        waited = f"release-{n}" if n == 1 else "never"  # job 2 waits for a file that never comes: the process dies
        job = start_job(f"other-{n}", "Elsewhere", lambda handle, waited=waited: (handle.report(0.5, "half way"),
                                                                                  wait_for(waited))[1], store=store)
        job.persist(force=True)
        (Path(folder) / f"started-{n}").touch()
        if n == 1:
            job.wait(60)
    wait_for("release-2")
    os._exit(0)  # the server dies with its job running


def test_another_servers_running_job_is_running_here_and_interrupted_only_when_its_process_is_gone(tmp_path):
    import multiprocessing as mp

    store = tmp_path / "jobs"
    process = mp.get_context("spawn").Process(target=_jobs_in_another_server, args=(str(store), str(tmp_path)))
    process.start()
    try:
        for n, ending in ((1, "done"), (2, "interrupted")):
            while not (tmp_path / f"started-{n}").exists():
                assert process.is_alive(), "the other process ended early"
                process.join(0.05)
            seen = get_job(f"other-{n}", store=store)  # this process never ran it: read from its record
            assert seen.state == "running" and seen.message == "half way", seen
            (tmp_path / f"release-{n}").touch()
            if n == 2:
                process.join(60)
            while get_job(f"other-{n}", store=store).state == "running":
                assert process.is_alive() or n == 2, "the job did not finish"
                process.join(0.05)
            assert get_job(f"other-{n}", store=store).state == ending
    finally:  # a failed assert must not leave the other process waiting forever
        if process.is_alive():
            process.kill()


def _write_record(store, **fields) -> None:
    import json

    from influence_core import jobs

    path = jobs._record_path(store, "remote")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": "remote", "title": "Remote", "state": "running", "owner": "elsewhere-1",
                                **fields}))


def test_a_job_on_another_host_is_interrupted_only_when_its_heartbeat_is_stale(tmp_path):
    import time

    from influence_core import jobs

    _write_record(tmp_path, host="another-host", pid=1, heartbeat=time.time())
    assert get_job("remote", store=tmp_path).state == "running"
    _write_record(tmp_path, host="another-host", pid=1, heartbeat=time.time() - 2 * jobs.STALE_SECONDS)
    assert get_job("remote", store=tmp_path).state == "interrupted"
    _write_record(tmp_path)  # a record from before jobs named their server: its process is gone, as before
    assert get_job("remote", store=tmp_path).state == "interrupted"


def test_a_running_job_beats_its_heartbeat_without_reporting(tmp_path, monkeypatch):
    import json
    import time

    from influence_core import jobs

    monkeypatch.setattr(jobs, "HEARTBEAT_SECONDS", 0.05)
    gate = threading.Event()
    job = start_job("quiet", "Quiet", lambda handle: gate.wait(30), store=tmp_path)
    path = jobs._record_path(tmp_path, "quiet")
    first = json.loads(path.read_text())
    assert first["host"] == jobs.HOST and first["pid"] > 0 and first["owner"] == jobs.PROCESS
    beat, deadline = first["heartbeat"], time.time() + 30
    while json.loads(path.read_text())["heartbeat"] == beat:  # the job never reports: the heartbeat still moves
        assert time.time() < deadline, "no heartbeat"
        time.sleep(0.02)
    gate.set()
    job.wait(10)
    assert json.loads(path.read_text())["state"] == "done"


def test_stop_from_another_server_reaches_the_running_job(tmp_path, monkeypatch):
    from influence_core import jobs

    monkeypatch.setattr(jobs, "HEARTBEAT_SECONDS", 0.05)
    started = threading.Event()

    def work(handle):
        started.set()
        while not handle.should_stop():
            handle.report(0.5, "working")
        return "stopped"

    live = start_job("long", "Long", work, store=tmp_path)
    started.wait(10)
    saved = dict(jobs._JOBS)
    jobs._JOBS.clear()  # the view of another server: the job known only by its record
    elsewhere = get_job("long", store=tmp_path)
    jobs._JOBS.update(saved)
    assert elsewhere.running and elsewhere is not live
    elsewhere.cancel()
    live.wait(30)
    assert live.state == "cancelled" and get_job("long", store=tmp_path).state == "cancelled"


def test_a_job_another_live_server_runs_is_not_started_twice(tmp_path):
    import os

    from influence_core import jobs

    parent = os.getppid()  # a live process of this host, not this one
    _write_record(tmp_path, host=jobs.HOST, pid=parent, pid_start=jobs._process_start(parent), heartbeat=0.0)
    ran = []
    job = start_job("remote", "Again", lambda handle: ran.append(1), store=tmp_path)
    assert job.running and job.title == "Remote" and not ran


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


def test_a_second_job_of_a_kind_is_refused_while_one_runs():
    import pytest

    from influence_core.jobs import Job, check_not_running

    check_not_running(None, "x")
    check_not_running(Job("score", "Scoring ip", state="done"), "x")
    with pytest.raises(InfluenceError, match=r"^Scoring ip is already running in this project \(scores\): wait"):
        check_not_running(Job("score", "Scoring ip"), "scores")
