"""Where datasets live on disk."""

import os
import pathlib

from data.errors import DatasetError

ENV_ROOT = "TCE_DATA_ROOT"
# Downloaded and decoded data lives here unless configured otherwise (dataset.root), never in the repository.
DEFAULT_ROOT = "~/.cache/tce/datasets"

# The code package is itself called `data`, so the natural-looking root "data" would fill the source tree
# with hundreds of megabytes of downloads; refuse it.
_CODE_DIR = pathlib.Path(__file__).resolve().parent


def resolve_root(root: str) -> pathlib.Path:
    """The dataset root: $TCE_DATA_ROOT when set, else `root`; absolute, with ~ expanded."""
    path = pathlib.Path(os.environ.get(ENV_ROOT) or root).expanduser().resolve()
    if path == _CODE_DIR or _CODE_DIR in path.parents:
        raise DatasetError(
            f"data root {str(path)!r} is inside the code package {str(_CODE_DIR)!r}; "
            f"configure another root or set {ENV_ROOT}"
        )
    return path
