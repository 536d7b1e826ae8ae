"""How long a training run will take, before it starts: time one or two real optimiser steps of the architecture
on the actual data (cheap), then multiply by batches × epochs. The Model page shows it next to the Train button."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data.base import Dataset
from ..errors import InfluenceError
from .registry import build_model, get_model_spec
from .train import TrainConfig, _objective, augment_images, evaluate_split, resolve_device

BUDGET_SECONDS = 0.5  # time spent measuring, about (one step of a very slow model may take longer)
REPEATS = 8  # steps timed on one batch size when they are cheap (the fastest counts)
MIN_REPEATS = 2  # steps timed on each batch size, however slow: one slowed step must not make the estimate
SMALL_BATCH = 4  # the first timed batch; then 4× larger while the budget allows, up to the real batch size
# L-BFGS iterations to convergence, by data kind: 10–25 measured on tabular data, 120–240 on CIFAR images (3,072
# inputs × 10 classes of weights).
LBFGS_TYPICAL_ITERATIONS = {"tabular": 25, "image": 200}
LBFGS_STEP_FACTOR = 1.5  # an L-BFGS iteration: the objective and gradient, line search and two-loop bookkeeping
FORWARD_SHARE = 1 / 3  # a no-grad forward pass costs about a third of a training step (forward + backward + update)


@dataclass(frozen=True)
class StepTimes:
    """Measured costs: seconds per optimiser step on ``batch`` rows (L-BFGS: one full-batch objective and gradient),
    seconds per sample of a no-grad evaluation pass, and how the step was measured (for the explanation)."""

    step: float
    batch: int
    eval_per_sample: float
    device: str
    measured_on: int  # rows of the timed batch (smaller than ``batch`` when scaled up linearly)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_clock(device: torch.device) -> Callable[[], float]:
    """What a step is timed by: on the CPU this thread's own CPU time (`time.thread_time`), the time the step ran —
    not the time it waited for the GIL or a core that other work in the server held, which made the wall-clock
    estimate ~400× too high there (issue 21; measured here: an MLP step beside two busy Python threads, fastest of 8:
    wall 93 ms, this thread 5 ms, alone 1 ms); on a GPU the wall clock (the device works while this thread waits)."""
    return time.perf_counter if device.type == "cuda" else time.thread_time


def measure_steps(dataset: Dataset, arch: str, config: TrainConfig | None = None,
                  device: str | torch.device | None = None, clock: Callable[[], float] | None = None) -> StepTimes:
    """Time real training steps of ``arch`` on the first training rows of ``dataset`` (the global RNG untouched).

    Steps are timed on batches growing from four rows to the real batch size while that stays within about half a
    second (`_grow`); the cost of a larger batch is extrapolated. L-BFGS: one full-batch objective and gradient.
    ``clock``: what steps are timed by (default `step_clock`; tests inject one)."""
    config = (config or TrainConfig()).resolved(arch)
    spec = get_model_spec(arch)
    if dataset.kind not in spec.input_kinds:
        raise InfluenceError(f"model '{arch}' needs {' or '.join(spec.input_kinds)} data, '{dataset.name}' is {dataset.kind}")
    n = len(dataset.train)
    if n == 0:
        raise InfluenceError("the training split is empty")
    dev = resolve_device(device)
    clock = clock or step_clock(dev)
    lbfgs = config.optimizer == "lbfgs"
    batch = n if lbfgs else min(int(config.batch_size), n)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)
        module = build_model(arch, dataset.input_shape, dataset.num_classes).to(dev)
        if lbfgs:
            opt = None  # one L-BFGS evaluation: the full-batch objective and its gradient
        elif config.optimizer in ("adam", "sgd"):
            opt = (torch.optim.Adam(module.parameters(), lr=config.lr) if config.optimizer == "adam" else
                   torch.optim.SGD(module.parameters(), lr=config.lr, momentum=0.9))
        else:
            raise InfluenceError(f"unknown optimizer '{config.optimizer}'; choose lbfgs, adam or sgd")
        gen = torch.Generator().manual_seed(config.seed)
        augment = bool(config.augment) and dataset.kind == "image" and not lbfgs

        # A minibatch step gathers its rows on the clock; L-BFGS holds the whole split on the device, and a stored
        # split is read by loader processes beside training: those rows are read outside the clock.
        gather_on_clock = not (lbfgs or dataset.train.on_disk)

        def step(rows: int) -> float:
            idx = torch.randperm(n, generator=gen)[:rows]
            if not gather_on_clock:
                x = dataset.train.rows(slice(0, rows))
            _sync(dev)
            start = clock()
            if gather_on_clock:
                x = dataset.train.rows(idx)  # the same gather as a training step
            x, y = x.to(dev), dataset.train.y[idx].to(dev)
            module.train()
            module.zero_grad()
            xb = augment_images(x, gen) if augment else x
            _objective(module, xb, y, None, config.l2).backward()
            if opt is not None:
                opt.step()
            _sync(dev)
            return clock() - start

        if lbfgs:
            step(batch)  # warm-up: allocations, kernel selection
            seconds, measured_on = _fastest(step, batch, 0.0)[0], batch
        else:
            seconds, measured_on = _grow(step, min(batch, max(2, min(SMALL_BATCH, n))), batch)
        # Each epoch ends with a validation pass (`evaluate_split`, batches of 512): time one batch of it.
        split = dataset.val if len(dataset.val) else dataset.train
        rows = min(len(split), 512)
        if measured_on < batch:  # slow model: do not time a forward pass of 512 rows as well
            eval_per_sample = FORWARD_SHARE * seconds / batch
        else:
            part = split.subset(np.arange(rows))
            evaluate_split(module, part, device=dev)  # warm-up

            def evaluation(_: int) -> float:
                start = clock()
                evaluate_split(module, part, device=dev)
                _sync(dev)
                return clock() - start

            eval_per_sample = _fastest(evaluation, rows, BUDGET_SECONDS)[0] / rows  # MIN_REPEATS passes
    return StepTimes(seconds, batch, eval_per_sample, str(dev), measured_on)


def _fastest(step: Callable[[int], float], rows: int, spent: float) -> tuple[float, float]:
    """The fastest of at least `MIN_REPEATS` and up to `REPEATS` steps on ``rows`` rows, as many as the budget
    allows. The fastest, not the median: on a busy CPU (another job's threads in this server, other processes) a
    step is slowed 100× at times — measured: 0.4 s against 1 ms for an MLP batch — never sped up. Returns it and
    the seconds spent so far."""
    times: list[float] = []
    while len(times) < MIN_REPEATS or (len(times) < REPEATS and spent + times[-1] < BUDGET_SECONDS):
        times.append(step(rows))
        spent += times[-1]
    return float(min(times)), spent


def _grow(step: Callable[[int], float], small: int, batch: int) -> tuple[float, int]:
    """Seconds per step on ``batch`` rows, and the rows of the largest batch timed: steps on batches growing 4× from
    ``small`` while the budget allows, extrapolated along the line through the last two (a step costs a fixed
    overhead plus a cost per row) when the real batch was too expensive to time. The first step is a warm-up and
    never counts: a thread's first steps pay one-off set-up costs (in a server, 0.4 s for a 1 ms step)."""
    step(small)
    spent, points, size = 0.0, [], small
    while True:
        t, spent = _fastest(step, size, spent)
        points.append((size, t))
        if size == batch:  # cheap enough to time the real batch
            return t, batch
        bigger = min(batch, size * 4)
        over = spent + t * bigger / size > BUDGET_SECONDS
        if over and (len(points) > 1 or t * bigger / size > 2 * BUDGET_SECONDS):
            break  # a second size is timed even over budget (within reason): one point cannot tell overhead from rows
        size = bigger
    (s1, t1), (s2, t2) = points[-2] if len(points) > 1 else (0, 0.0), points[-1]
    slope = (t2 - t1) / (s2 - s1)
    if len(points) == 1 or slope <= 0:  # one point or noise: proportional to the rows (an overestimate)
        return t2 * batch / s2, s2
    return t2 + slope * (batch - s2), s2


def estimate_training(dataset: Dataset, config: TrainConfig, times: StepTimes) -> dict:
    """How long training with the resolved ``config`` takes: ``seconds``; ``text``, the figure for people (prefixed
    "at most" when early stopping may end sooner); ``how``, the arithmetic behind it; ``at_most``. Networks: epochs ×
    batches × the measured step plus a validation pass per epoch and the final accuracy passes; L-BFGS: a typical
    number of full-batch iterations (many parameters need more: ``how`` gives the limit's time)."""
    n_train, n_val, n_test = len(dataset.train), len(dataset.val), len(dataset.test)
    final = (n_train + n_val + n_test) * times.eval_per_sample
    where = "the GPU" if times.device.startswith("cuda") else "this machine's CPU"
    if config.optimizer == "lbfgs":
        iteration = LBFGS_STEP_FACTOR * times.step
        typical = min(LBFGS_TYPICAL_ITERATIONS.get(dataset.kind, LBFGS_TYPICAL_ITERATIONS["tabular"]), config.max_iter)
        seconds = typical * iteration + final
        longest = config.max_iter * iteration + final
        how = (f"about {typical} full-batch L-BFGS iterations at {_short(iteration)} each on {where}, as usual on "
               f"{dataset.kind} data; {format_duration(longest)} at its limit of {config.max_iter}")
        return {"seconds": seconds, "text": about(seconds), "how": how, "at_most": False}
    batches = math.ceil(n_train / times.batch)
    per_epoch = batches * times.step + n_val * times.eval_per_sample
    seconds = config.epochs * per_epoch + final
    measured = "" if times.measured_on == times.batch else f", scaled from a batch of {times.measured_on}"
    how = (f"{config.epochs} epochs × {batches:,} batches of {times.batch} at {_short(times.step)} a batch on {where}"
           f"{measured}, plus a validation pass per epoch")
    at_most = bool(config.patience)
    text = (f"at most {about(seconds)} (early stopping usually ends sooner)" if at_most else about(seconds))
    return {"seconds": seconds, "text": text, "how": how, "at_most": at_most}


def _short(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def about(seconds: float) -> str:
    """An estimate for people: 'about 3 s', or 'under a second' (never 'about under a second')."""
    return format_duration(seconds) if seconds < 1 else f"about {format_duration(seconds)}"


def format_duration(seconds: float) -> str:
    """A duration for people: '3 s', '2 min 10 s', '1 h 25 min' (under a second: 'under a second')."""
    if seconds < 1:
        return "under a second"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
