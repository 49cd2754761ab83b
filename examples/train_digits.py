"""Training a small CNN on real data with every convolution on OpenCL, beside plain PyTorch.

The data are the handwritten digits that ship inside scikit-learn (``load_digits``: 1,797 8x8 images,
no download). The same model is trained twice from the same seed, once with ``torch.nn.Conv2d`` and once
with every convolution converted to :class:`clconv.torch.Conv2d`, and the two runs are reported side by
side. ``--world-size 2`` trains data-parallel with PyTorch's DistributedDataParallel (gloo, loopback),
one process per rank, each free to use its own OpenCL device (``--devices 0:0,1:0``).

    python examples/train_digits.py                     # clconv and torch.nn.Conv2d side by side
    python examples/train_digits.py --world-size 2      # DistributedDataParallel, two local processes
    python examples/train_digits.py --world-size 2 --devices 0:0,1:0   # one OpenCL device per rank

``clconv train-demo`` runs this same program (an installed clconv carries it as ``clconv/examples``). It
needs the torch and examples extras: ``pip install torch "clconv[examples]"``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

import clconv.torch as cltorch
from clconv import platforms


def load_data(seed: int = 0):
    """Digits as float32 (N, 1, 8, 8) in [0, 1], split 75/25 stratified."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.25, random_state=seed,
                                                        stratify=digits.target)
    return (torch.from_numpy(x_train), torch.from_numpy(y_train).long(),
            torch.from_numpy(x_test), torch.from_numpy(y_test).long())


def make_model(seed: int = 0) -> torch.nn.Module:
    """Two 3x3 convolutions, a pooling and a linear classifier, initialised from ``seed``."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 10),
    )


@dataclasses.dataclass
class History:
    label: str
    train_loss: list = dataclasses.field(default_factory=list)
    test_loss: list = dataclasses.field(default_factory=list)
    train_accuracy: list = dataclasses.field(default_factory=list)
    test_accuracy: list = dataclasses.field(default_factory=list)
    epoch_seconds: list = dataclasses.field(default_factory=list)


def evaluate(model, x, y) -> tuple[float, float]:
    with torch.no_grad():
        logits = model(x)
        return (torch.nn.functional.cross_entropy(logits, y).item(),
                (logits.argmax(dim=1) == y).float().mean().item())


def train(model, data, epochs: int, batch_size: int, lr: float, seed: int, label: str, progress=True,
          sampler_rank=None) -> History:
    """SGD with momentum; batches drawn from a generator seeded with ``seed`` so runs can be compared."""
    x_train, y_train, x_test, y_test = data
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    history = History(label)
    for epoch in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x_train), generator=generator)
        if sampler_rank is not None:  # (rank, world_size): this rank's share of every global batch
            rank, world = sampler_rank
            order = order[: len(order) // (batch_size * world) * batch_size * world]
            order = order.view(-1, world, batch_size)[:, rank].reshape(-1)
        batches = order.split(batch_size)
        model.train()
        for batch in tqdm(batches, desc=f"{label} epoch {epoch + 1}/{epochs}", leave=False, disable=not progress):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        history.epoch_seconds.append(time.perf_counter() - start)
        model.eval()
        for (loss, accuracy), losses, accuracies in (
                (evaluate(model, x_train, y_train), history.train_loss, history.train_accuracy),
                (evaluate(model, x_test, y_test), history.test_loss, history.test_accuracy)):
            losses.append(loss)
            accuracies.append(accuracy)
        if progress:
            print(f"{label:>8} epoch {epoch + 1:2d}: train loss {history.train_loss[-1]:.4f} "
                  f"test loss {history.test_loss[-1]:.4f} test accuracy {history.test_accuracy[-1]:.3%} "
                  f"({history.epoch_seconds[-1]:.2f} s)")
    return history


def first_step_difference(data, batch_size: int, lr: float, seed: int, cl_device=None) -> float:
    """Largest weight difference between plain torch and clconv after one identical SGD step."""
    x_train, y_train = data[0][:batch_size], data[1][:batch_size]
    plain = make_model(seed)
    ours = cltorch.convert(copy.deepcopy(plain), cl_device)
    for model in (plain, ours):
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        torch.nn.functional.cross_entropy(model(x_train), y_train).backward()
        optimizer.step()
    return max((a - b).abs().max().item() for a, b in zip(plain.parameters(), ours.parameters()))


MATPLOTLIB_MISSING = "matplotlib is not installed (pip install 'clconv[examples]')"


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot(plt, histories, path: Path) -> None:
    fig, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for history in histories:
        epochs = range(1, len(history.train_loss) + 1)
        loss_axis.plot(epochs, history.train_loss, label=f"{history.label} train")
        loss_axis.plot(epochs, history.test_loss, "--", label=f"{history.label} test")
        accuracy_axis.plot(epochs, history.train_accuracy, label=f"{history.label} train")
        accuracy_axis.plot(epochs, history.test_accuracy, "--", label=f"{history.label} test")
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("CNN on sklearn digits: clconv (OpenCL) vs torch.nn.Conv2d, same seed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- data-parallel training -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_device(devices, rank):
    specs = [s for s in (devices or "").split(",") if s]
    return specs[rank % len(specs)] if specs else None


def _ddp_worker(rank, world_size, init_method, options, result_path):
    # Each process gets its own PoCL kernel cache (PoCL 3.x races on a shared one).
    os.environ["POCL_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"clconv-pocl-rank{rank}")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    torch.distributed.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size)
    try:
        cl_device = _rank_device(options["devices"], rank)
        data = load_data(options["seed"])
        model = cltorch.convert(make_model(options["seed"]), cl_device)
        parallel = torch.nn.parallel.DistributedDataParallel(model)
        if options.get("steps"):
            _sgd_steps(parallel, data, options["steps"], options["batch_size"], options["lr"], (rank, world_size))
            history = None
        else:
            history = train(parallel, data, options["epochs"], options["batch_size"], options["lr"], options["seed"],
                            f"rank {rank}", progress=rank == 0, sampler_rank=(rank, world_size))
        if rank == 0 and result_path:
            torch.save({"state": model.state_dict(), "history": history,
                        "device": platforms.resolve(cl_device).info.summary()}, result_path)
    finally:
        torch.distributed.destroy_process_group()


def _spawned_worker(rank, world_size, init_method, options, result_path):
    """``_ddp_worker`` in a process of ours, which then leaves without the interpreter's teardown: there a
    native runtime's threads (gloo's or an OpenCL driver's) intermittently aborted the process ("terminate
    called without an active exception", about 1 run in 7 here) after all the work was saved. Errors
    still reach mp.spawn as tracebacks."""
    _ddp_worker(rank, world_size, init_method, options, result_path)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _sgd_steps(model, data, steps, batch_size, lr, shard=None):
    """Plain SGD on global batches 0..steps-1 of ``batch_size * world`` images; a rank takes its slice."""
    x_train, y_train = data[0], data[1]
    rank, world = shard or (0, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        start = (step * world + rank) * batch_size
        batch = slice(start, start + batch_size)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
        optimizer.step()


def distributed_run(world_size: int, options: dict) -> dict:
    """Run ``_ddp_worker`` on ``world_size`` local processes; rank 0's result (state, history, device)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder:
        result_path = os.path.join(folder, "rank0.pt")
        init_method = f"tcp://127.0.0.1:{free_port()}"
        mp.spawn(_spawned_worker, args=(world_size, init_method, options, result_path), nprocs=world_size, join=True)
        return torch.load(result_path, weights_only=False)


def single_process_steps(options: dict, world_size: int) -> dict:
    """What DDP computes, in one process: the same steps on the concatenated global batches."""
    data = load_data(options["seed"])
    model = cltorch.convert(make_model(options["seed"]))
    _sgd_steps(model, data, options["steps"], options["batch_size"] * world_size, options["lr"])
    return model.state_dict()


# -- command line ---------------------------------------------------------------------------------

DEFAULT_PLOT = "train-digits.png"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clconv train-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cl-device", default=None, help="OpenCL device spec for clconv (default: clconv's default)")
    parser.add_argument("--world-size", type=int, default=1, help="data-parallel processes (DDP, gloo, loopback)")
    parser.add_argument("--devices", default="", help="comma-separated OpenCL device per rank, e.g. 0:0,1:0")
    parser.add_argument("--out", help=f"PNG of loss and accuracy per epoch (default {DEFAULT_PLOT}; needs "
                                      "matplotlib; not drawn by data-parallel runs)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = not args.no_progress
    data_parallel = args.world_size > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    # A plot that was asked for and cannot be drawn is an error before any training, not a silent omission.
    if args.out and data_parallel:
        parser.error("--out: data-parallel runs (--world-size > 1, torchrun) draw no plot")
    plt = None if data_parallel else pyplot()
    if args.out and plt is None:
        parser.error(f"--out cannot be drawn: {MATPLOTLIB_MISSING}")
    options = {"seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
               "devices": args.devices or args.cl_device or ""}
    if "TORCHELASTIC_RUN_ID" in os.environ:  # launched by torchrun, possibly across machines
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        with tempfile.TemporaryDirectory() as folder:
            result_path = os.path.join(folder, "rank0.pt")
            _ddp_worker(rank, world_size, "env://", options, result_path)
            if rank == 0:
                history = torch.load(result_path, weights_only=False)["history"]
                print(f"DDP with {world_size} processes: final test accuracy {history.test_accuracy[-1]:.2%}")
        return 0
    if args.world_size > 1:
        result = distributed_run(args.world_size, options)
        history = result["history"]
        print(f"DDP with {args.world_size} processes (rank 0 on {result['device']}): final test accuracy "
              f"{history.test_accuracy[-1]:.2%}, {np.mean(history.epoch_seconds):.2f} s per epoch")
        return 0 if history.test_accuracy[-1] >= 0.95 else 1

    data = load_data(args.seed)
    device = platforms.resolve(args.cl_device).info
    print(f"clconv device: {device.summary()}")
    print(f"data: {len(data[0])} training and {len(data[2])} test images of 8x8 digits (sklearn)")
    plain = make_model(args.seed)
    ours = cltorch.convert(copy.deepcopy(plain), args.cl_device)
    histories = [train(plain, data, args.epochs, args.batch_size, args.lr, args.seed, "torch", progress),
                 train(ours, data, args.epochs, args.batch_size, args.lr, args.seed, "clconv", progress)]
    difference = first_step_difference(data, args.batch_size, args.lr, args.seed, args.cl_device)
    print(f"\n{'':24}{'torch.nn.Conv2d':>18}{'clconv':>18}")
    rows = (("final test accuracy", lambda h: f"{h.test_accuracy[-1]:.2%}"),
            ("final train loss", lambda h: f"{h.train_loss[-1]:.4f}"),
            ("final test loss", lambda h: f"{h.test_loss[-1]:.4f}"),
            ("seconds per epoch", lambda h: f"{np.median(h.epoch_seconds):.3f}"))
    for name, value in rows:
        print(f"{name:24}{value(histories[0]):>18}{value(histories[1]):>18}")
    print(f"largest weight difference after the first step: {difference:.2e}")
    print("\nconvolution memory (clconv, last forward; bytes):")
    for row in cltorch.memory_report(ours):
        details = ", ".join(f"{k.replace('_device_bytes', '')} {v}" for k, v in row.items()
                            if k.endswith("_device_bytes"))
        print(f"  layer {row['layer']}: kept for backward {row['saved_for_backward_bytes']}; device bytes per pass: "
              f"{details}")
    if plt is None:
        print(f"no plot drawn: {MATPLOTLIB_MISSING}")
    else:
        plot(plt, histories, Path(args.out or DEFAULT_PLOT))
        print(f"plot written to {args.out or DEFAULT_PLOT}")
    return 0 if histories[1].test_accuracy[-1] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
