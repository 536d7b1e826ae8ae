"""Training-time estimates (`models.estimate`, `Project.training_estimate`): the estimate lands near a real run's
time, the step-time extrapolation is exact for a step whose cost is linear in its rows, measurements are cached
per data / architecture / batch size, and early stopping turns the figure into an "at most"."""

from __future__ import annotations

import time

import pytest
import torch

from influence_core.errors import InfluenceError
from influence_core.models import estimate
from influence_core.models.estimate import _grow, format_duration, measure_steps
from influence_core.project import Project


@pytest.fixture
def proj(tmp_path):
    return Project.open("estimate", tmp_path)


def _timed_training(proj: Project, arch: str, config: dict) -> float:
    """The training's time by the estimate's own clock (on the CPU: this thread's CPU time, `step_clock`): how long
    it computes, whatever else the machine runs meanwhile (the test machine is shared)."""
    start = time.thread_time()
    proj.train(arch, config)
    return time.thread_time() - start


def test_network_estimate_is_within_a_factor_of_a_real_two_epoch_run(proj):
    # An accuracy check of the estimate (not of speed): both times come from the same machine, by the same clock.
    proj.use_dataset("moons", seed=0, n_train=4000)
    config = {"epochs": 2, "patience": 0}
    guess = proj.training_estimate("mlp", config)
    actual = _timed_training(proj, "mlp", config)
    assert 0.2 * actual <= guess["seconds"] <= 5 * actual, (guess, actual)
    assert "2 epochs × 63 batches of 64" in guess["how"] and guess["text"] == estimate.about(guess["seconds"])


def test_lbfgs_estimate_is_within_a_generous_factor_of_a_real_fit(proj):
    proj.use_dataset("moons", seed=0, n_train=20000)
    guess = proj.training_estimate("logreg")
    actual = _timed_training(proj, "logreg", {})
    assert 0.1 * actual <= guess["seconds"] <= 10 * actual, (guess, actual)
    assert "L-BFGS iterations" in guess["how"] and "limit of 500" in guess["how"]


def test_measured_once_per_data_architecture_and_batch_size(proj, monkeypatch):
    from influence_core import project as project_module

    project_module.MEMORY.clear("estimates")  # measurements are kept per process: start from none
    proj.use_dataset("moons", seed=0)
    calls = []
    real = estimate.measure_steps
    monkeypatch.setattr(estimate, "measure_steps", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    e10, e100, e190 = (proj.training_estimate("mlp", {"epochs": e, "patience": 0})["seconds"] for e in (10, 100, 190))
    assert len(calls) == 1  # other epochs: the same measured step
    assert e190 - e100 == pytest.approx(e100 - e10) and e100 > e10  # linear in the epochs
    proj.training_estimate("mlp", {"epochs": 10, "batch_size": 32})
    assert len(calls) == 2  # another batch size is measured again
    proj.use_dataset("blobs", seed=0)
    proj.training_estimate("mlp", {"epochs": 10})
    assert len(calls) == 3  # and so is other data


def test_early_stopping_makes_it_an_upper_bound(proj):
    proj.use_dataset("moons", seed=0)
    with_patience = proj.training_estimate("mlp", {"patience": 30})
    without = proj.training_estimate("mlp", {"patience": 0})
    assert with_patience["at_most"] and with_patience["text"].startswith("at most about ")
    assert "early stopping usually ends sooner" in with_patience["text"]
    assert not without["at_most"] and "early stopping" not in without["text"]
    assert with_patience["seconds"] == pytest.approx(without["seconds"])  # the same 300 epochs, said differently


def test_growth_extrapolates_a_linear_step_cost_exactly():
    timed = []

    def step(rows: int) -> float:  # a step costing 10 ms plus 4 ms a row, reported without sleeping
        timed.append(rows)
        return 0.010 + 0.004 * rows

    seconds, measured_on = _grow(step, 4, 128)
    assert seconds == pytest.approx(0.010 + 0.004 * 128)
    assert measured_on < 128 and max(timed) == measured_on  # the real batch was too dear to time within the budget
    seconds, measured_on = _grow(lambda rows: 0.001 * rows, 4, 64)  # cheap: timed on the real batch
    assert seconds == pytest.approx(0.064) and measured_on == 64


def test_a_step_dominated_by_overhead_is_not_scaled_by_its_rows():
    # 100 ms a step whatever the batch (a small convnet on a busy CPU): after one batch of 4 the budget is spent, but
    # a second size is timed so that the fixed cost is not multiplied by 32 (3.3 s instead of 0.23 s a batch).
    timed = []
    seconds, measured_on = _grow(lambda rows: timed.append(rows) or 0.1 + 0.001 * rows, 4, 128)
    assert seconds == pytest.approx(0.1 + 0.001 * 128) and set(timed) == {4, 16} and measured_on == 16


def test_a_very_slow_step_is_timed_twice_after_its_warm_up_and_scaled(monkeypatch):
    timed = []
    seconds, measured_on = _grow(lambda rows: timed.append(rows) or 0.8, 4, 128)
    assert timed == [4, 4, 4] and measured_on == 4 and seconds == pytest.approx(0.8 * 32)


def test_a_warm_up_and_a_step_slowed_by_another_job_do_not_make_the_estimate():
    """Seen in the server (digits zip, MLP): "3.1 s a batch" for a 2 ms step. A thread's first step pays set-up costs,
    and with the CPU busy (another job's threads, other processes) a multi-threaded step waits 0.4 s at times
    (measured here: 0.4 s against 1 ms). The warm-up was counted, and one slowed step ended the timing."""
    slow = [0.45, 0.4]  # the warm-up, then one step slowed by a busy CPU

    def step(rows: int) -> float:
        return slow.pop(0) if slow else 0.001 + 0.0001 * rows

    seconds, measured_on = _grow(step, 4, 64)
    assert measured_on == 64 and seconds == pytest.approx(0.001 + 0.0001 * 64)


def test_every_step_and_the_validation_pass_are_timed_by_the_injected_clock(proj):
    """Issue 21: the estimate was ~400× too high in the server. Whatever clock `measure_steps` is given times every
    step and the validation pass (the real wall time of these steps plays no part): with a clock that moves 3 ms
    from a step's start to its end, a batch costs 3 ms and an evaluated sample 3 ms / its rows."""
    proj.use_dataset("moons", seed=0, n_train=200, n_val=100)
    ticks = iter(range(10**6))
    times = measure_steps(proj.dataset(), "mlp", clock=lambda: 0.003 * next(ticks))  # one tick a step
    assert times.step == pytest.approx(0.003) and times.measured_on == times.batch == 64
    assert times.eval_per_sample == pytest.approx(0.003 / 100)


def test_on_the_cpu_a_step_is_timed_by_its_own_threads_cpu_time_not_by_what_it_waits_for():
    """Waiting for the GIL or a core held by other work in the server (a job's threads, other sessions) is not the
    step's cost; on a GPU the wall clock counts (the device works while the thread waits)."""
    import threading

    from influence_core.models.estimate import step_clock

    assert step_clock(torch.device("cuda")) is time.perf_counter
    clock = step_clock(torch.device("cpu"))
    held = threading.Lock()
    held.acquire()
    threading.Timer(0.3, held.release).start()
    start = clock()
    held.acquire()  # 0.3 s waiting for what another thread holds
    assert clock() - start < 0.1


def test_measuring_leaves_the_global_random_state_alone(proj):
    proj.use_dataset("moons", seed=0)
    ds = proj.dataset()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    measure_steps(ds, "mlp")
    assert torch.equal(torch.rand(3), expected)


def test_an_architecture_that_cannot_take_the_data_is_refused_in_one_line(proj):
    proj.use_dataset("moons", seed=0)
    with pytest.raises(InfluenceError, match="model 'cnn' needs image data"):
        proj.training_estimate("cnn")


def test_durations_read_like_people_write_them():
    assert [format_duration(s) for s in (0.2, 3.4, 130, 900, 5400, 7200)] == [
        "under a second", "3 s", "2 min 10 s", "15 min", "1 h 30 min", "2 h"]
    assert [estimate.about(s) for s in (0.2, 3.4)] == ["under a second", "about 3 s"]  # never "about under a second"


def test_lbfgs_iterations_follow_the_data_kind():
    """Measured: L-BFGS converges in 10–25 iterations on tables and 229 on the CIFAR subset's 30,730 weights; the
    estimate takes 25 and 200, never more than the iteration limit."""
    from types import SimpleNamespace

    from influence_core.models import TrainConfig

    times = estimate.StepTimes(step=0.1, batch=100, eval_per_sample=0.0, device="cpu", measured_on=100)
    split = [0] * 100

    def guess(kind, max_iter=500):
        data = SimpleNamespace(kind=kind, train=split, val=split, test=split)
        return estimate.estimate_training(data, TrainConfig(optimizer="lbfgs", max_iter=max_iter), times)

    assert guess("tabular")["seconds"] == pytest.approx(25 * 1.5 * 0.1)
    assert guess("image")["seconds"] == pytest.approx(200 * 1.5 * 0.1)
    assert guess("image", max_iter=50)["seconds"] == pytest.approx(50 * 1.5 * 0.1)
    assert "about 200 full-batch L-BFGS iterations" in guess("image")["how"]
