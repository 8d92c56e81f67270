"""Which table shows a cell's row, and which family of paired tests its comparison with CE belongs to: each a
function of the row's own keys (recipe, dataset, noise type, setting), never of what else is in the runs folder.

Tables (scripts/tables.py builds them): under the paper's recipe and uniform noise, the paper's losses on its
datasets are Table 1 (CIFAR-100+) or Table 2 (MNIST, CIFAR-10+, SVHN), and on another dataset that dataset's own
table; every other loss is the zoo's. Any other noise type or recipe gets a table per (recipe, dataset, noise type).

Families (scripts/paired.py applies Holm's method within each): per table, the confirmatory family holds the rows of
selection of TCE (`tce@val`, `tce@val-dataset`) against CE across all of the table's columns: the claim "TCE beats
CE" that a table makes. The exploratory family holds every other row of the table against CE. A row belongs to one
family only, so that zoo runs added to a runs folder leave Tables 1 and 2 as they are.
"""

from collections.abc import Mapping

from scripts.loss_settings import PAPER_LOSSES, RULES

PAPER_NOISE_TYPE = "uniform"  # the paper replaces labels by labels drawn uniformly from all classes (Sec. 3.3)
PAPER_TABLES = {
    "table1": ("Table 1", ["cifar100"], [0.0, 0.2, 0.4, 0.6, 0.8]),
    "table2": ("Table 2", ["mnist", "cifar10", "svhn"], [0.0, 0.4, 0.8]),
}
PAPER_DATASETS = ["cifar10", "cifar100", "mnist", "svhn"]
ZOO = "zoo"
CONFIRMED_LOSS = "tce"  # the loss whose rows of selection a table's claim is about
CONFIRMATORY, EXPLORATORY = "confirmatory", "exploratory"


def table_of(recipe: str, dataset: str, noise_type: str, loss: str, paper_recipe: str) -> str:
    """The name of the table that shows a row of this recipe, dataset, noise type and loss."""
    if recipe == paper_recipe and noise_type == PAPER_NOISE_TYPE:
        if loss not in PAPER_LOSSES:
            return ZOO
        for name, (_, datasets, _) in PAPER_TABLES.items():
            if dataset in datasets:
                return name
    name = dataset if noise_type == PAPER_NOISE_TYPE else f"{dataset}_{noise_type}"
    return name if recipe == paper_recipe else f"{name}-{recipe}"


def family_of(row: Mapping, paper_recipe: str) -> str:
    """The family of a row's comparison with CE (a row of cells.csv or paired.csv: its recipe, dataset, noise type,
    loss and setting): "<table> confirmatory" for TCE's rows of selection, else "<table> exploratory"."""
    rule = row["setting"].partition("@")[2]
    kind = CONFIRMATORY if row["loss"] == CONFIRMED_LOSS and rule in RULES else EXPLORATORY
    return f"{table_of(row['recipe'], row['dataset'], row['noise_type'], row['loss'], paper_recipe)} {kind}"
