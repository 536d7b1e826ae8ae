"""How fast is IP? Forward pass vs IP by forward-mode JVP (the library path) vs vmap per-sample gradients vs a
per-sample autograd loop, on the small CNN with 32×32×3 inputs (random data: timing only).

    python bench/ip_speed.py [--sizes 2000 8000] [--loop-sample 200]

Prints a markdown table and writes bench/results/ip_speed.json. The loop is timed on --loop-sample samples
and scaled linearly to N (it is linear in N by construction).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import influence_core as ic  # noqa: E402
from influence_core.data import Dataset, Split  # noqa: E402
from influence_core.grads import per_sample_grads, per_sample_loss, select_params  # noqa: E402
from influence_core.models import fitted_from_module  # noqa: E402
from influence_core.models.architectures import SmallCNN  # noqa: E402

from _common import machine, markdown_table, peak_memory, timed, write_results  # noqa: E402


def random_images(n: int, n_val: int, num_classes: int, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    split = lambda k: Split(torch.randn(k, 3, 32, 32, generator=g), torch.randint(0, num_classes, (k,), generator=g))  # noqa: E731
    return Dataset("random-32x32", split(n), split(n_val), split(8), [str(c) for c in range(num_classes)], kind="image")


def forward_only(module, ds, batch_size, device):
    with torch.no_grad():
        for x, _ in ds.train.batches(batch_size, device):
            module(x)


def vmap_ip(module, ds, target, batch_size, device):
    """IP from explicit per-sample gradients (vmap), reduced batch by batch against the target."""
    params = select_params(module)
    out = []
    for x, y in ds.train.batches(batch_size, device):
        g = per_sample_grads(module, params, x, y)
        out.append(sum((g[k].flatten(1) * target[k].flatten()).sum(1) for k in params))
    return torch.cat(out)


def loop_ip(module, ds, target, n, device):
    params = list(module.parameters())
    flat_target = torch.cat([target[k].flatten() for k, _ in module.named_parameters()])
    out = []
    for i in range(n):
        x, y = ds.train.x[i : i + 1].to(device), ds.train.y[i : i + 1].to(device)
        g = torch.autograd.grad(per_sample_loss(module(x), y).sum(), params)
        out.append(torch.cat([t.flatten() for t in g]) @ flat_target)
    return torch.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000])
    ap.add_argument("--loop-sample", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args()
    device = ic.models.resolve_device(None)
    runs = []
    for n in args.sizes:
        ds = random_images(n, 256, args.classes, seed=0)
        torch.manual_seed(0)
        module = SmallCNN((3, 32, 32), args.classes)
        fitted = fitted_from_module(module, "cnn", ds)
        dev_module = fitted.module.to(device).eval()
        # Warm-up every path once on a small slice (first-call costs: kernel selection, AD decompositions).
        warm = Dataset("warm", ds.train.subset(range(64)), ds.val.subset(range(64)), ds.test, ds.classes, kind="image")
        forward_only(dev_module, warm, args.batch_size, device)
        ic.compute_scores(warm, fitted, "ip", device=str(device), batch_size=args.batch_size)
        forward_s, _ = timed(forward_only, dev_module, ds, args.batch_size, device)
        with peak_memory() as mem:
            ip_s, scores = timed(ic.compute_scores, ds, fitted, "ip", device=str(device), batch_size=args.batch_size)
        params = select_params(dev_module)
        target = ic.make_impact("utility").target_gradient(dev_module, params, ds, 512, device)
        with peak_memory() as vmem:
            vmap_s, vscores = timed(vmap_ip, dev_module, ds, target, args.batch_size, device)
        k = min(args.loop_sample, n)
        loop_ip(dev_module, ds, target, 8, device)
        loop_k_s, lscores = timed(loop_ip, dev_module, ds, target, k, device)
        # Sanity: the three paths agree (relative error of the score vectors).
        err_vmap = float((torch.as_tensor(scores) - vscores.double().cpu()).norm() / vscores.double().norm())
        err_loop = float((torch.as_tensor(scores[:k]) - lscores.double().cpu()).norm() / lscores.double().norm())
        runs.append({"n": n, "forward_s": forward_s, "ip_s": ip_s, "vmap_s": vmap_s, "loop_s": loop_k_s * n / k,
                     "loop_timed_on": k, "ip_over_forward": ip_s / forward_s, "vmap_over_forward": vmap_s / forward_s,
                     "loop_over_forward": loop_k_s * n / k / forward_s, "peak_mb": mem["peak_mb"],
                     "vmap_peak_mb": vmem["peak_mb"], "rel_err_vs_vmap": err_vmap, "rel_err_vs_loop": err_loop})
        print(f"n={n}: done", file=sys.stderr)
    cols = [("n", "N"), ("forward_s", "forward s"), ("ip_s", "IP (JVP) s"), ("vmap_s", "vmap s"), ("loop_s", "loop s*"),
            ("ip_over_forward", "IP/fwd"), ("vmap_over_forward", "vmap/fwd"), ("loop_over_forward", "loop/fwd"),
            ("peak_mb", "IP peak MB"), ("vmap_peak_mb", "vmap peak MB"), ("rel_err_vs_loop", "rel err")]
    print(markdown_table(runs, cols))
    print(f"\n*loop timed on {args.loop_sample} samples and scaled to N. IP includes the impact gradient over 256 "
          f"validation samples. Machine: {machine()}")
    path = write_results("ip_speed", {"machine": machine(), "model": "SmallCNN (3x32x32, 10 classes)",
                                      "batch_size": args.batch_size, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
