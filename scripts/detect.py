"""Which training labels are wrong: the scores, flags and metrics of scripts/detection_scores.py on the runs that
recorded their training (detect=true: samples.npz and snapshots/), against the flips their noise made.

    python -m scripts.detect --runs RUNS_DIR [--out OUT_DIR]

Every complete run with a samples.npz is scored from each SOURCE of probabilities it has:
- dynamics: the softmax averaged over the training minibatches (train mode, augmented), its bias divided out, and
  the AUM and forgetting scores of the same presentations, all through the last epoch;
- protocol: the eval-mode snapshot at the cell's protocol epoch (its validation run's best), or the latest snapshot
  before it when none was taken there (the `epoch` column says which); last: the snapshot at the last epoch;
- ensemble: the protocol snapshots averaged over a cell's full runs that trained on the same labels (a noise file,
  CIFAR-N); seeds whose noise differs are not ensembled, since each would score another seed's flips;
- holdout: the validation run's snapshot of its holdout at the protocol epoch, scored against the holdout's given
  labels, which it never trained on.
All but holdout are in-sample: the network trained on the very labels it scores, so memorization hides the flips it
fitted. A cell's numbers are the mean ± std over its runs. Each setting other than CE is paired with CE by seed
(the runs of a seed share their noisy labels) on each score's AUROC and each rule's F1, with the paired statistics
of scripts/paired.py and Holm's adjustment over the whole table (an exploratory family). OUT_DIR gets detection.csv
(one row per run, source and score or rule), detection_paired.csv and detection.md.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.lifecycle import COMPLETE
from experiments.rundir import CorruptRun, RunDir
from experiments.sample_dynamics import EMA_DECAY
from scripts.aggregate import Aggregation, aggregate
from scripts.detection_scores import RULES, dynamics_scores, flags, metric_rows, probability_scores
from scripts.loss_settings import CELL_KEYS, noise_text, setting_label, setting_of
from scripts.paired import BASELINE, holm, paired_statistics
from scripts.table_formats import markdown_table

# Where a run's probabilities come from (see above), and whether the network trained on the labels they score.
SOURCES = {"dynamics": True, "protocol": True, "last": True, "ensemble": True, "holdout": False}
COLUMN_KEYS = [k for k in CELL_KEYS if k != "setting"]


def ema_probabilities(samples: dict[str, np.ndarray]) -> np.ndarray:
    """The softmax average of each sample (N, C), its bias 1 - EMA_DECAY^seen divided out."""
    seen = samples["seen"].astype(np.float64)[:, None]
    return samples["ema"].astype(np.float64) / np.maximum(1 - EMA_DECAY ** seen, 1e-12)


def snapshot_at(run_dir: RunDir, epoch: int | None, name: str) -> tuple[int, np.ndarray] | None:
    """(the epoch, probabilities (N, C) of set `name`) of the latest snapshot at or before `epoch`; None without."""
    at = run_dir.latest_snapshot(epoch)
    log_probs = None if at is None else run_dir.read_snapshot(at).get(name)
    if log_probs is None:
        return None
    p = np.exp(log_probs.astype(np.float64))
    return at, p / p.sum(axis=1, keepdims=True)  # float16 rounding leaves rows a little off 1


def source_rows(source: str, epoch: int, p: np.ndarray, given: np.ndarray, clean: np.ndarray,
                extra: dict[str, np.ndarray] | None = None) -> list[dict]:
    scores = {**probability_scores(p, given), **(extra or {})}
    return [{"source": source, "epoch": epoch, "in_sample": SOURCES[source], **row}
            for row in metric_rows(scores, flags(p, given), given, clean)]


def full_run_rows(run_dir: RunDir, samples: dict, protocol: int | None, epochs: int) -> tuple[list[dict], object]:
    """A full run's rows of the dynamics, protocol and last sources, and its protocol snapshot (or None)."""
    given, clean = samples["given"], samples["clean"]
    rows = source_rows("dynamics", int(samples["epoch"]), ema_probabilities(samples), given, clean,
                       dynamics_scores(samples))
    at_protocol = snapshot_at(run_dir, protocol, "portion")
    for source, found in (("protocol", at_protocol), ("last", snapshot_at(run_dir, epochs, "portion"))):
        if found is not None:
            rows += source_rows(source, found[0], found[1], given, clean)
    return rows, at_protocol


def holdout_rows(run_dir: RunDir, samples: dict, protocol: int | None) -> list[dict]:
    """A validation run's rows of its holdout at the protocol epoch (none before VAL_TRUTH was recorded)."""
    found = snapshot_at(run_dir, protocol, "val")
    if found is None or "val_given" not in samples:
        return []
    return source_rows("holdout", found[0], found[1], samples["val_given"], samples["val_clean"])


def protocol_epochs(cells: pd.DataFrame) -> dict[tuple, int]:
    """Each cell's protocol epoch (its validation run's best), by CELL_KEYS."""
    known = cells.fillna({"noise_variant": ""}).dropna(subset=["best_epoch"])
    return {tuple(r[k] for k in CELL_KEYS): int(r["best_epoch"]) for r in known.to_dict("records")}


def detection_frame(aggregation: Aggregation) -> tuple[pd.DataFrame, list[str]]:
    """detection.csv of every complete run of `aggregation` with samples.npz, and the runs left out (why)."""
    table = aggregation.runs_table.fillna({"noise_variant": ""})
    protocol = protocol_epochs(aggregation.cells)
    rows, left_out, ensembles, labels = [], [], {}, {}
    for run in table[table["status"] == COMPLETE].to_dict("records"):
        run_dir = RunDir(run["run_dir"])
        if not run_dir.samples.exists():
            continue
        cell = tuple(run[k] for k in CELL_KEYS)
        try:
            samples = run_dir.read_samples()
            if run["holdout"] > 0:
                found = holdout_rows(run_dir, samples, protocol.get(cell))
            else:
                found, at_protocol = full_run_rows(run_dir, samples, protocol.get(cell), int(run["epochs"]))
                if at_protocol is not None:
                    same_labels = (cell, samples["given"].tobytes())
                    ensembles.setdefault(same_labels, []).append((at_protocol, samples))
        except CorruptRun as error:
            left_out.append(str(error))
            continue
        keys = {key: run[key] for key in [*CELL_KEYS, "seed", "run_dir"]}
        labels[cell] = setting_label(setting_of(run))
        rows += [{**keys, "label": labels[cell], "runs": 1, **row} for row in found]
    for (cell, _), members in ensembles.items():
        if len(members) > 1:
            (epoch, _), samples = members[0]
            p = np.mean([p for (_, p), _ in members], axis=0)
            keys = {**dict(zip(CELL_KEYS, cell, strict=True)), "seed": None, "run_dir": None, "label": labels[cell],
                    "runs": len(members)}
            rows += [{**keys, **row} for row in source_rows("ensemble", epoch, p, samples["given"], samples["clean"])]
    return pd.DataFrame(rows), left_out


def paired_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Each setting other than CE against CE, by seed, per column, source and score (AUROC) or rule (F1)."""
    single = frame[(frame["runs"] == 1) & frame["seed"].notna()]
    rows = []
    for key, group in single.groupby([*COLUMN_KEYS, "source", "what"], sort=True):
        metric = "f1" if key[-1] in RULES else "auroc"
        values = group.pivot_table(index="seed", columns="setting", values=metric, aggfunc="first")
        if BASELINE not in values:
            continue
        for setting in (s for s in values.columns if s != BASELINE):
            both = values[[setting, BASELINE]].dropna()
            rows.append({**dict(zip([*COLUMN_KEYS, "source", "what"], key, strict=True)), "setting": setting,
                         "label": group.loc[group["setting"] == setting, "label"].iloc[0], "baseline": BASELINE,
                         "metric": metric,
                         **paired_statistics(list(both[setting] - both[BASELINE]))})
    paired = pd.DataFrame(rows)
    if not paired.empty:
        paired["p_holm"] = holm(paired["p_value"])
    return paired


def _spread(values: pd.Series, digits: int = 3) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    return f"{values.mean():.{digits}f}" + (f" ± {values.std():.{digits}f}" if len(values) > 1 else "")


def _noise(row) -> str:
    return noise_text(row["noise_type"], row["noise_variant"], row["noise"])


def display_tables(frame: pd.DataFrame, paired: pd.DataFrame) -> list[tuple[str, list[str], list[list[str]]]]:
    """(caption, header, rows) of the detection table, per cell and source each score's AUROC, AP and P@K and each
    rule's F1, precision and recall (mean ± std over the runs); and of the paired differences from CE."""
    columns = ["auroc", "ap", "p_at_k", "flagged", "precision", "recall", "f1", "flag_all_f1"]
    header = ["dataset", "noise", "loss", "source (epoch)", "sample", "runs", "score or rule", "AUROC", "AP", "P@K",
              "flagged", "precision", "recall", "F1", "F1 flag all"]
    order = {source: i for i, source in enumerate(SOURCES)}
    grouped, rows = frame.groupby([*CELL_KEYS, "source"], sort=True), []
    for key in sorted(grouped.groups, key=lambda k: (*k[:-1], order[k[-1]])):
        group = grouped.get_group(key)
        first = group.iloc[0]
        epochs = "/".join(str(e) for e in sorted(group["epoch"].unique()))
        runs = int(group["runs"].iloc[0]) if first["source"] == "ensemble" else group["run_dir"].nunique()
        for what, mine in group.groupby("what", sort=False):
            rows.append([first["dataset"], _noise(first), first["label"], f"{first['source']} ({epochs})",
                         "in" if first["in_sample"] else "out", str(runs), what,
                         *(_spread(mine[c], 1 if c == "flagged" else 3) if c in mine else "—" for c in columns)])
    tables = [("Label-error detection (lower score: more likely wrong):", header, rows)]
    if paired.empty:
        return tables
    rows = []
    for r in paired.to_dict("records"):
        interval = "—" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        diff = "—" if pd.isna(r["mean_diff"]) else f"{r['mean_diff']:+.3f}"
        rows.append([r["dataset"], _noise(r), r["label"], r["source"], r["what"], str(r["n_pairs"]), diff,
                     interval, *(f"{r[c]:.3g}" if pd.notna(r[c]) else "—" for c in ("p_value", "p_exact", "p_holm"))])
    header = ["dataset", "noise", "loss", "source", "score or rule", "pairs", "mean diff", "95% CI", "p", "p exact",
              "p Holm"]
    return tables + [(f"Paired against {BASELINE.upper()} by seed (setting − {BASELINE.upper()}; AUROC for a score, "
                      "F1 for a rule):",
                      header, rows)]


def markdown(frame: pd.DataFrame, paired: pd.DataFrame) -> str:
    return "\n".join(f"{caption}\n\n{markdown_table(header, rows)}"
                     for caption, header, rows in display_tables(frame, paired))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding run directories")
    parser.add_argument("--out", type=Path, help="folder for detection.csv, detection_paired.csv and detection.md")
    args = parser.parse_args(argv)
    frame, left_out = detection_frame(aggregate(args.runs))
    for line in left_out:
        print(f"left out: {line}")
    if frame.empty:
        print(f"no complete run under {args.runs} recorded its dynamics (train with detect=true)")
        return
    paired = paired_frame(frame)
    text = markdown(frame, paired)
    print(f"{frame['run_dir'].nunique()} runs under {args.runs} recorded their dynamics.\n")
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out / "detection.csv", index=False)
        paired.to_csv(args.out / "detection_paired.csv", index=False)
        (args.out / "detection.md").write_text(text)
        print(f"wrote detection.csv, detection_paired.csv and detection.md to {args.out}")


if __name__ == "__main__":
    main()
