"""Fetch datasets before training, where the network is reachable (a cluster's login node), without building a model:

    python -m data.download mnist cifar10 cifar100 svhn cifar10n cifar100n [--root DIR]

Each dataset is downloaded into the data root ($TCE_DATA_ROOT, else --root, else dataset.root's default) in
torchvision's layout, checked against torchvision's checksums, decoded and cached as the runs read it
(<root>/tce-cache/<name>.pt); cifar10n and cifar100n are the CIFAR-N label files, which must have their official
size and SHA-256, also when they were there before. Runs then find everything in place, also with
dataset.download=false, which never touches the network. One line per dataset; a failure is one line and exit
code 2.
"""

import argparse
import hashlib
import sys

from data.cifar_n import FILES, fetch_cifar_n
from data.errors import DatasetError
from data.sources import CACHE_DIR, DATASETS, DEFAULT_ROOT, load_dataset, resolve_root

# The synthetic dataset is made in memory; the CIFAR-N files are named by their dataset, as Wei et al. name them.
NAMES = {**{name: name for name in DATASETS if name != "synthetic"}, **{f"{name}n": name for name in FILES}}


def fetch(name: str, root: str) -> str:
    """Fetch, check and decode `name` (one of NAMES) under `root`; what is there now, in one line."""
    if NAMES[name] != name:  # a CIFAR-N file
        spec = FILES[NAMES[name]]
        path = fetch_cifar_n(NAMES[name], root)
        content = path.read_bytes()
        if (len(content), hashlib.sha256(content).hexdigest()) != (spec.size, spec.sha256):
            raise DatasetError(
                f"{path} is not the official {spec.name} ({spec.size} bytes, sha256 {spec.sha256}); delete it to "
                "download it again"
            )
        return f"{name}: {path}, the official file"
    dataset = load_dataset(name, root, download=True)
    cache = resolve_root(root) / CACHE_DIR / f"{name}.pt"
    return f"{name}: {len(dataset.train_labels)} training and {len(dataset.test_labels)} test images, cached in {cache}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, as every other bad input
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = _Parser(prog="python -m data.download", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=list(NAMES), metavar="NAME", help=", ".join(NAMES))
    parser.add_argument("--root", default=DEFAULT_ROOT, help=f"the data root (default {DEFAULT_ROOT}); "
                        "$TCE_DATA_ROOT overrides it, as in training")
    args = parser.parse_args(argv)
    for name in dict.fromkeys(args.names):
        try:
            print(fetch(name, args.root), flush=True)
        except DatasetError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
