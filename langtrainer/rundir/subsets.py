"""A folder of subsets (a run's data/, `data build --out`): written atomically with its distribution.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langtrainer import atomic
from langtrainer.artifacts import Distribution
from langtrainer.errors import UserError, setting_error
from langtrainer.rundir.run import RunDir


def write_subsets(subsets, distribution: Distribution | dict[str, Any], target: Path) -> None:
    """Save a DatasetDict with its distribution.json into `target`, atomically (used for data/ and `data build`).

    Temporary copies of `target` that a killed build left beside it go first (old enough to be no live build's).
    """
    from langtrainer.preflight import UNLOCKED_TEMP_AGE_S, remove_stale_temporaries

    check_subsets_not_empty(subsets)
    if not isinstance(distribution, Distribution):
        distribution = Distribution.from_dict(distribution, "the subsets' distribution report")
    remove_stale_temporaries(Path(target).parent, UNLOCKED_TEMP_AGE_S, name=Path(target).name)
    with atomic.atomic_dir(target) as tmp:
        subsets.save_to_disk(str(tmp))
        distribution.write(tmp / RunDir.DISTRIBUTION)


def check_subsets_not_empty(subsets) -> None:
    """UserError for an empty train or test split: nothing could train on or be measured with it, and every
    later command would fail reading it."""
    for name, split in subsets.items():
        if len(split) == 0 and name.split("_")[0] in ("train", "test"):
            raise UserError(f"the '{name}' split would be empty: give data with {name.split('_')[0]} examples (or "
                            "raise data.test_fraction / the split sizes) before building")


def is_subsets_folder(path: Path) -> bool:
    """True for a folder written by `write_subsets`."""
    return (path / "dataset_dict.json").is_file() and (path / RunDir.DISTRIBUTION).is_file()


def check_subsets_target(out: Path) -> None:
    """`data build --out` is replaced whole: refuse a file, or a folder that `write_subsets` did not write."""
    if out.exists() and not out.is_dir():
        raise setting_error(f"{{out}} '{out}' is a file: give a new folder (or an earlier data build output)", "out")
    if out.is_dir() and any(out.iterdir()) and not is_subsets_folder(out):
        raise setting_error(
            f"{{out}} '{out}' exists and is not a data build output; it would be replaced: "
            "give a new folder (or delete it)", "out")
