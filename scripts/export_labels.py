"""Write a run's noisy labels as a label file that others load (here with noise_type=file):

    python -m scripts.export_labels RUN_DIR --format npy|csv|json [--output PATH]

npy and json hold the noisy labels only, from RUN_DIR/noisy_labels.npy. csv holds the clean labels too
(label,label_noisy, as chenpf1025/IDN's files), so that a loader can check them: it reads the run's dataset (the
dataset keys of RUN_DIR/config.yaml) and first checks that its labels give the run's noise_matrix.csv. PATH
defaults to noisy_labels.<format> in the working directory. Prints the file written and its SHA-256, to pass as
noise_sha256. A problem prints one line and exits with 2.
"""

import argparse
import hashlib
import pathlib
import sys

import numpy as np
import torch
from omegaconf import OmegaConf

from data.errors import DatasetError, one_line
from data.files import write_atomic
from data.label_files import WRITE_FORMATS, integer_labels, label_file_bytes
from data.noise import noise_matrix
from data.sources import class_count, load_dataset
from experiments.rundir import NOISE_MATRIX, NOISY_LABELS, RunDir


class ExportError(Exception):
    """The run's labels cannot be exported; the message is one line."""


def _clean_labels(run_dir: pathlib.Path, config, noisy: np.ndarray) -> np.ndarray:
    """The run's clean training labels, read from its dataset and checked against its noise_matrix.csv."""
    ds = config.dataset
    try:
        dataset = load_dataset(ds.name, ds.root, train_size=ds.train_size, test_size=ds.test_size,
                               num_classes=ds.num_classes, seed=ds.seed, image_size=ds.image_size, download=False)
    except (DatasetError, ValueError) as error:
        raise ExportError(f"csv needs the clean labels of the run's dataset: {error}") from None
    clean = dataset.train_labels
    try:
        recorded = RunDir(run_dir).read_noise_matrix()
    except (OSError, ValueError) as error:
        raise ExportError(f"cannot read the noise matrix of {run_dir} ({one_line(error)})") from None
    if len(clean) != len(noisy) or not np.array_equal(
        noise_matrix(clean, torch.from_numpy(noisy), dataset.num_classes).numpy(), recorded
    ):
        raise ExportError(f"the {ds.name} training labels under {ds.root!r} are not those the run in {run_dir} "
                          f"trained on (they do not give its {NOISE_MATRIX})")
    return clean.numpy()


def export(run_dir: pathlib.Path, fmt: str, output: pathlib.Path) -> str:
    """Writes the labels of the run in `run_dir` to `output` in format `fmt`; returns the file's SHA-256."""
    try:
        config = OmegaConf.load(RunDir(run_dir).config)
        num_classes = class_count(config.dataset.name, config.dataset.num_classes)
        noisy = integer_labels(RunDir(run_dir).read_noisy_labels(), num_classes)
    except (OSError, ValueError) as error:
        raise ExportError(f"{run_dir} is not a run directory with noisy labels ({one_line(error)})") from None
    clean = _clean_labels(run_dir, config, noisy) if fmt == "csv" else None
    content = label_file_bytes(noisy, clean, fmt)
    try:
        write_atomic(output, lambda file: file.write(content))
    except OSError as error:
        raise ExportError(f"cannot write {output} ({one_line(error)})") from None
    return hashlib.sha256(content).hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.export_labels", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=pathlib.Path, help=f"a run directory (holds {NOISY_LABELS})")
    parser.add_argument("--format", choices=WRITE_FORMATS, required=True)
    parser.add_argument("--output", type=pathlib.Path, help="the file to write (default noisy_labels.<format>)")
    args = parser.parse_args(argv)
    output = args.output or pathlib.Path(f"noisy_labels.{args.format}")
    try:
        sha256 = export(args.run_dir, args.format, output)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {output} (sha256 {sha256}); load it with noise_type=file noise_file={output} noise_sha256={sha256}")


if __name__ == "__main__":
    main()
