"""How much memory training a pack takes, for tests/test_packing.py: `python tests/peak_memory.py K B [separate]`
prints the peak resident memory (bytes) that preparing K runs' data, three training steps at batch B and an
evaluation pass add to the process, which has the dataset (20,000 synthetic images) loaded already, and its channel
statistics.

Measured as Linux counts it: /proc/self/clear_refs resets the process's peak resident set (VmHWM) to what it holds
now (VmRSS), and VmHWM afterwards is the highest it reached, whatever allocated it. In a fresh process, so that no
earlier test's memory is counted or reused, and with the pages that loading the dataset freed handed back first
(malloc_trim; the caller also sets MALLOC_ARENA_MAX=1 and a low MALLOC_MMAP_THRESHOLD_): pages malloc keeps after a
free are reused without raising VmHWM, which once made a run alone read 12 MiB instead of about 170.
"""

import ctypes
import gc
import sys
from itertools import islice
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import load_dataset, shared_images  # noqa: E402
from experiments.resolve import compose, resolve  # noqa: E402
from experiments.run import run_data_for  # noqa: E402
from experiments.trainer import Member, PackTrainer, initial_model_state  # noqa: E402


def status_bytes(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) * 1024


def main(members: int, batch_size: int, separate: bool) -> int:
    """`separate`: each run's data gets its own copy of the images, as before packs shared them (prepared only: a
    pack cannot train on them), to show what sharing saves."""
    torch.set_num_threads(1)
    cfgs = [resolve(compose("dataset=synthetic", "dataset.train_size=20000", "dataset.test_size=1000", "holdout=0",
                            f"batch_size={batch_size}", "eval_batch_size=8", "device=cpu", f"seed={k}", "loss=tce",
                            f"loss.alpha={k / 4}")) for k in range(members)]
    ds = cfgs[0].dataset
    dataset = load_dataset(ds.name, "", train_size=ds.train_size, test_size=ds.test_size, num_classes=ds.num_classes,
                           seed=ds.seed, image_size=ds.image_size)
    assert dataset.channel_stats  # once per dataset, not per run: computed before
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = status_bytes("VmRSS")
    images = None if separate else shared_images(dataset, holdout=0, split_seed=ds.split_seed,
                                                 eval_train_size=cfgs[0].eval_train_size, device=torch.device("cpu"))
    runs = [Member(cfg, run_data_for(cfg, dataset, torch.device("cpu"), images),
                   initial_model_state(cfg, 3, 10)) for cfg in cfgs]
    if separate:
        return status_bytes("VmHWM") - before
    trainer = PackTrainer(runs, torch.device("cpu"))
    trainer.model.train()
    for x, y in islice(trainer.batches, 3):
        trainer.step(x, y)
    trainer.evaluate("test")
    return status_bytes("VmHWM") - before


if __name__ == "__main__":
    print(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] == ["separate"]))
