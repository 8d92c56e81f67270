"""Selection on validation: for a loss run at several settings, which one its validation runs choose.

Every loss with more than one setting gets a row per rule, `<loss>@<rule>` (scripts/loss_settings.py RULES), that
reports the chosen setting's cell as it is (its full runs at its own protocol epoch), with the chosen setting's tag
in `selected`:

- `val`, per cell (recipe, dataset, noise type, noise set, noise): among the settings of the cell, the one whose
  validation run reached the highest validation accuracy (at its own best epoch);
- `val-dataset`, the rule of the IJCAI-LMNL 2022 challenge: one setting for every noise level (and noise set) of a
  (recipe, dataset, noise type), the one with the highest mean validation accuracy over those levels.

Ties go to the first setting in row order (TCE's alpha increasing, as the presets list them). A setting whose
validation run diverged (at a level the rule compares) is not a candidate, and the row's note names it; otherwise a
rule chooses only when every setting it compares has its validation run at every level it compares them on, else
its row has no value, and a problem says why. The per-setting rows stay: the paper reports every alpha.
"""

import math

from experiments.identity import GROUP, LEVEL
from experiments.schema import LOSS_KEYS
from scripts.loss_settings import cell_name, setting_of, setting_order


def selection_rows(cells: list[dict]) -> tuple[list[dict], list[dict | None], list[str]]:
    """The rows of every rule for the cells.csv rows `cells` (settings without a rule); for each, the cell row it
    reports, or None when the rule could not choose; and the problems, one line each."""
    groups: dict[tuple, dict[tuple, dict[str, dict]]] = {}
    for cell in cells:
        levels = groups.setdefault((*(cell[k] for k in GROUP), cell["loss"]), {})
        levels.setdefault(tuple(cell[k] for k in LEVEL), {})[cell["setting"]] = cell
    rows, sources, problems = [], [], []

    def add(like: dict, rule: str, chosen: dict | None, why: str | None, excluded: list[str]) -> None:
        tag = f"{like['loss']}@{rule}"
        note = f"not a candidate, its val run diverged: {', '.join(excluded)}" if excluded else None
        if chosen is None:
            rows.append({**{k: like[k] for k in (*GROUP, *LEVEL, "loss")}, **dict.fromkeys(LOSS_KEYS),
                         "setting": tag, "note": note})
            problems.append(f"{cell_name(rows[-1])}: no choice, {why}")
        else:
            rows.append({**chosen, "setting": tag, "selected": chosen["setting"], "note": note})
        sources.append(chosen)

    for levels in groups.values():
        order = _row_order({tag: cell for level in levels.values() for tag, cell in level.items()})
        if len(order) < 2:
            continue
        for level in levels.values():
            if len(level) > 1:
                chosen, why, excluded = _choose({tag: [level[tag]] for tag in order if tag in level})
                add(next(iter(level.values())), "val", chosen and level[chosen], why, excluded)
        chosen, why, excluded = _choose({tag: [level.get(tag) for level in levels.values()] for tag in order})
        for level in levels.values():  # a choice means that every level has a cell of it
            add(next(iter(level.values())), "val-dataset", level[chosen] if chosen else None, why, excluded)
    return rows, sources, problems


def _row_order(cells: dict[str, dict]) -> list[str]:
    """The settings of `cells` (tag -> a cell of that setting) in row order."""
    return sorted(cells, key=lambda tag: setting_order(setting_of(cells[tag])))


def _choose(candidates: dict[str, list[dict | None]]) -> tuple[str | None, str | None, list[str]]:
    """(the setting with the highest mean best_val_acc over its cells, None, the settings left out because a
    validation run of theirs diverged), or (None, why not, those) when one of the other cells is missing or has no
    usable validation run; `candidates` maps each setting, in row order, to its cells."""
    order, scores, excluded = list(candidates), {}, []
    for tag, found in candidates.items():
        if any(cell is not None and cell.get("val_diverged") is True for cell in found):
            excluded.append(tag)
            continue
        if any(cell is None or math.isnan(cell["best_val_acc"]) for cell in found):
            unusable = next((cell["note"] for cell in found if cell is not None and cell.get("note")), None)
            return None, (f"{tag} has no usable validation run " + ("here" if len(found) == 1 else "at every level")
                          + (f" ({unusable})" if unusable else "")), excluded
        scores[tag] = sum(cell["best_val_acc"] for cell in found) / len(found)
    if not scores:
        return None, "the validation run of every setting diverged", excluded
    return max(scores, key=lambda tag: (scores[tag], -order.index(tag))), None, excluded
