"""CIFAR-10 as uint8 tensors: loading, caching, subsets, splits and device-resident batches.

Where the images come from, in order:
1. an ImageFolder directory, `root=` or env `CVAE_DATA_DIR`: `<root>/{train,test}/<class>/*.jpg|png`
   (`<root>/cifar10/...` is accepted too, as the offline archive unpacks that way);
2. otherwise `torchvision.datasets.CIFAR10(download=True)` into `cache_dir()`.

Decoding 60,000 files takes seconds, so the decoded arrays are cached as one uint8 tensor per
split (`cache_dir()`, env `CVAE_CACHE_DIR`). Everything downstream works on `ImageSet`s:
images `x` (N, 3, 32, 32) uint8 in [0, 255] and labels `y` (N,) int64 in 0..9, small enough
(184 MB for all of CIFAR-10) to live on the GPU, so batches need no DataLoader workers.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import settings
from .files import atomic_write
from .pixels import from_unit, to_unit  # re-exported: chapters and solutions import them from here

__all__ = ["CLASSES", "DataError", "ImageSet", "TensorSet", "load_cifar10", "random_translate", "cache_dir",
           "find_root", "to_unit", "from_unit", "fingerprint",
           "to_float"]

CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer",
                            "dog", "frog", "horse", "ship", "truck")  # canonical label order 0..9
IMAGE_SHAPE = (32, 32, 3)  # (H, W, C) of one CIFAR-10 image
_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp"}


class DataError(RuntimeError):
    """The data could not be loaded; the message names the problem and the fix."""


def cache_dir() -> Path:
    """Where decoded arrays and downloads go: `$CVAE_CACHE_DIR` or `~/.cache/cvae_lib`."""
    return settings.cache_dir()


def fingerprint(data) -> str:
    """A short digest of a data set (ImageSet or TensorSet): its size, all its labels and, for
    uint8 images, up to 4,096 of them exactly (evenly spaced). Two subsets, splits or classes of
    CIFAR-10 differ in it; checkpoints record it so that a finished run is never reused for other
    training data. Float data (latents) enter through mean and std to 3 digits only: encoding the
    same images with another thread count changes their last bits, not the data."""
    x, y = data.x, data.y
    h = hashlib.sha256(f"{tuple(x.shape)} {x.dtype}".encode())
    h.update(y.detach().cpu().contiguous().numpy().tobytes())
    if x.is_floating_point():
        h.update(f"{float(x.float().mean()):.3g} {float(x.float().std()):.3g}".encode())
    else:
        h.update(x[:: max(1, len(x) // 4096)].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1], same shape."""
    return x.float().div_(255.0)


@dataclass
class ImageSet:
    """A labelled image set held as tensors.

    x: (N, 3, 32, 32) uint8 in [0, 255];  y: (N,) int64 class ids in 0..9 (canonical CIFAR-10
    ids are kept in every subset, so a class-conditional model sees the same id everywhere).
    """
    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...] = CLASSES

    def __post_init__(self):
        if self.x.dtype != torch.uint8 or self.x.dim() != 4 or self.x.shape[1] != 3:
            raise ValueError(f"ImageSet.x must be uint8 (N, 3, H, W), got {tuple(self.x.shape)} "
                             f"{self.x.dtype}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        counts = torch.bincount(self.y.cpu(), minlength=len(self.classes)).tolist()
        present = {c: n for c, n in zip(self.classes, counts) if n}
        return f"ImageSet({len(self)} images on {self.x.device}, per class {present})"

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> ImageSet:
        """The same set on `device` (a no-op if it is already there)."""
        return ImageSet(self.x.to(device), self.y.to(device), self.classes)

    def take(self, idx: torch.Tensor) -> ImageSet:
        """The images at positions `idx` (a 1-D index tensor)."""
        idx = idx.to(self.x.device)
        return ImageSet(self.x[idx], self.y[idx], self.classes)

    def images(self, n: int | None = None) -> torch.Tensor:
        """The first `n` images as float (n, 3, 32, 32) in [0, 1]."""
        return to_float(self.x[:n])

    def subset(self, classes: Sequence[str | int] | None = None, n_per_class: int | None = None,
               seed: int = 0) -> ImageSet:
        """Keep only `classes` (names or ids; None: every class this set holds) and at most
        `n_per_class` images of each. A named class with no images here is a DataError.

        The `n_per_class` images are a seeded random choice, so the same seed gives the same
        subset on every machine. Order within the result: by class, then random.
        """
        if n_per_class is not None and (isinstance(n_per_class, bool) or not isinstance(n_per_class, int)
                                        or n_per_class < 1):
            raise ValueError(f"n_per_class is how many images to keep of each class, at least 1 (or None for "
                             f"all), got {n_per_class!r}")
        ids = sorted(set(self.y.tolist())) if classes is None else [self._class_id(c) for c in classes]
        if not ids:
            raise DataError("this set holds no images, so there is nothing to take a subset of: check the "
                            "split or the filter that built it")
        g = torch.Generator().manual_seed(seed)
        y = self.y.cpu()
        keep = []
        for k in ids:
            members = torch.nonzero(y == k).flatten()
            if len(members) == 0:
                raise DataError(f"class {self.classes[k]!r} has no images in this set; "
                                f"available: {sorted(set(self.classes[i] for i in y.tolist()))}")
            members = members[torch.randperm(len(members), generator=g)]
            keep.append(members[:n_per_class] if n_per_class is not None else members)
        return self.take(torch.cat(keep))

    def split(self, n_val_per_class: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """A stratified (train, validation) split: `n_val_per_class` of each class go to validation.

        Validation is carved from the training split, so the test split is never used to
        choose anything (epochs, early stopping, hyperparameters).
        """
        g = torch.Generator().manual_seed(seed)
        y = self.y.cpu()
        val, train = [], []
        for k in torch.unique(y).tolist():
            members = torch.nonzero(y == k).flatten()
            members = members[torch.randperm(len(members), generator=g)]
            if n_val_per_class >= len(members):
                raise DataError(f"cannot take {n_val_per_class} validation images from class "
                                f"{self.classes[k]!r}, which has only {len(members)}")
            val.append(members[:n_val_per_class])
            train.append(members[n_val_per_class:])
        return self.take(torch.cat(train).sort().values), self.take(torch.cat(val).sort().values)

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                hflip: bool = False, translate: int = 0,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches on the set's device: x float (B, 3, 32, 32) in [0, 1], y (B,) int64.

        The order is a seeded permutation of (seed, epoch), so every index appears exactly once
        per epoch and a resumed run sees the same batches as an uninterrupted one. `hflip`
        mirrors a seeded random half of each batch; `translate` shifts each image by a seeded
        random offset of up to that many pixels in x and y, filling the border by reflection
        (both augmentations run on the device).
        """
        g, chunks = _batch_order(len(self), batch_size, shuffle, seed, epoch, drop_last, self.x.device)
        for idx in chunks:
            x = to_float(self.x[idx])  # (B, 3, H, W) in [0, 1]
            if hflip:
                flip = (torch.rand(len(idx), generator=g) < 0.5).to(x.device)
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            if translate:
                x = random_translate(x, translate, g)
            yield x, self.y[idx]

    def _class_id(self, c: str | int) -> int:
        if isinstance(c, int):
            if not 0 <= c < len(self.classes):
                raise DataError(f"class id {c} out of range 0..{len(self.classes) - 1}")
            return c
        try:
            return self.classes.index(c)
        except ValueError:
            raise DataError(f"unknown class {c!r}; CIFAR-10 classes are: "
                            f"{', '.join(self.classes)}") from None


def _batch_order(n: int, batch_size: int, shuffle: bool, seed: int, epoch: int, drop_last: bool,
                 device: torch.device) -> tuple[torch.Generator, list[torch.Tensor]]:
    """The index chunks of one epoch, a seeded permutation of (seed, epoch), and the generator
    that made it (augmentations draw from it next, so a resumed run repeats them exactly)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    order = order.to(device)
    stop = n - n % batch_size if drop_last else n
    return g, [order[start:start + batch_size] for start in range(0, stop, batch_size)]


@dataclass
class TensorSet:
    """A labelled set of float tensors that `fit` can train on like an ImageSet, e.g. the latent
    grids of a first stage (chapter 06): x (N, C, H, W) float, y (N,) int64 class ids.

    Batches are the same seeded permutation per (seed, epoch) as ImageSet's. Image augmentations
    (flips, shifts) are refused: flipping a latent grid is not the latent of the flipped image,
    so augment the images before encoding them instead.
    """
    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...] = CLASSES

    def __post_init__(self):
        if not self.x.is_floating_point() or self.x.dim() != 4:
            raise ValueError(f"TensorSet.x must be a float (N, C, H, W) tensor, got {tuple(self.x.shape)} "
                             f"{self.x.dtype}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} tensors but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> TensorSet:
        return TensorSet(self.x.to(device), self.y.to(device), self.classes)

    def take(self, idx: torch.Tensor) -> TensorSet:
        idx = idx.to(self.x.device)
        return TensorSet(self.x[idx], self.y[idx], self.classes)

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                hflip: bool = False, translate: int = 0,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches on the set's device: x (B, C, H, W) as stored, y (B,)."""
        if hflip or translate:
            raise ValueError("a TensorSet holds latents, not images: flips and shifts of a latent grid "
                             "are not the latents of flipped or shifted images. Set hflip=False and "
                             "translate=0, and augment the images before encoding them.")
        _, chunks = _batch_order(len(self), batch_size, shuffle, seed, epoch, drop_last, self.x.device)
        for idx in chunks:
            yield self.x[idx], self.y[idx]


def random_translate(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of x (B, C, H, W) by its own offset in [-pad, pad]^2, reflecting at the border.

    Pads once, then crops one window per distinct offset (at most (2 pad + 1)^2 slices, whatever
    the batch size); the offsets come from `generator`, so a resumed run repeats them.
    """
    if pad < 0:
        raise ValueError(f"translate must be >= 0, got {pad}")
    b, _, h, w = x.shape
    shifts = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    out = torch.empty_like(x)
    for dy, dx in shifts.unique(dim=0).tolist():
        sel = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().squeeze(1).to(x.device)
        out[sel] = padded[sel, :, dy:dy + h, dx:dx + w]
    return out


# ----------------------------------------------------------------------------- loading

def load_cifar10(split: str = "train", root: str | os.PathLike | None = None, *,
                 download: bool = True, cache: bool = True) -> ImageSet:
    """CIFAR-10 `split` ("train": 50,000 images, "test": 10,000) as an ImageSet on the CPU.

    root: an ImageFolder directory (see module docstring); default `$CVAE_DATA_DIR`. Without
    either, torchvision downloads the original data into `cache_dir()` if `download` is true.
    Raises DataError with the fix when the folder, a class or an image is missing or broken.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = root if root is not None else settings.current().data_dir
    if root is None:
        return _load_torchvision(split, download)
    split_dir = find_root(root) / split
    if not split_dir.is_dir():
        raise DataError(f"CIFAR-10 split folder {split_dir} is missing: an ImageFolder copy needs "
                        f"both train/ and test/ (re-extract the archive, or fix CVAE_DATA_DIR).")
    files = _list_images(split_dir)
    cache_file = cache_dir() / f"cifar10-{split}-{_fingerprint(files)}.pt"
    if cache and cache_file.exists():
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    data = _decode(files)
    if cache:
        try:
            with atomic_write(cache_file) as tmp:  # a crash never leaves a half-written cache
                torch.save({"x": data.x, "y": data.y, "digest": _digest(data.x, data.y)}, tmp)
        except OSError as e:                   # a full disk or a read-only cache: work without it
            print(f"could not write the image cache {cache_file} ({e}); continuing without it "
                  f"(set CVAE_CACHE_DIR to a writable folder with ~200 MB free)")
    return data


def _digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """A checksum of the decoded pixels and labels, stored in the cache and checked on load."""
    h = hashlib.blake2b(digest_size=16)
    h.update(x.contiguous().numpy().tobytes())
    h.update(y.contiguous().numpy().tobytes())
    return h.hexdigest()


def _read_cache(path: Path) -> ImageSet | None:
    """The cached images, or None (with a one-line message) when the file is damaged."""
    try:
        blob = torch.load(path, weights_only=True)
        ok = isinstance(blob, dict) and blob.get("digest") == _digest(blob["x"], blob["y"])
    except Exception as e:  # truncated, not a torch file, wrong keys: all mean "rebuild it"
        ok, reason = False, f"{type(e).__name__}: {str(e)[:80]}"
    else:
        reason = "its checksum does not match its pixels"
    if ok:
        return ImageSet(blob["x"], blob["y"])
    print(f"the image cache {path} is damaged ({reason}): decoding the images again")
    path.unlink(missing_ok=True)
    return None


def find_root(root: str | os.PathLike) -> Path:
    """The folder holding train/ and test/: `root` itself or `root/cifar10`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"CIFAR-10 folder {root} does not exist. Point CVAE_DATA_DIR (or root=) "
                        f"at a folder with train/<class>/ and test/<class>/ image folders, e.g. "
                        f"the extracted offline archive, or unset it to download with torchvision.")
    for candidate in (root, root / "cifar10"):
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            return candidate
    raise DataError(f"{root} has no train/ or test/ folder. Expected the ImageFolder layout "
                    f"<root>/{{train,test}}/<class>/*.jpg (or <root>/cifar10/...).")


def _list_images(split_dir: Path) -> list[tuple[Path, int]]:
    """(file, class id) for every image, classes in canonical order, files sorted by name."""
    present = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    missing = [c for c in CLASSES if c not in present]
    if missing:
        raise DataError(f"class folder(s) {', '.join(missing)} missing in {split_dir}. CIFAR-10 "
                        f"needs all ten: {', '.join(CLASSES)} (re-extract the archive).")
    extra = [c for c in present if c not in CLASSES]
    if extra:
        raise DataError(f"unexpected folder(s) {', '.join(extra)} in {split_dir}; only the ten "
                        f"CIFAR-10 classes may be there: {', '.join(CLASSES)}.")
    files = []
    for k, c in enumerate(CLASSES):
        names = sorted(p for p in (split_dir / c).iterdir() if p.suffix.lower() in _EXTENSIONS)
        if not names:
            raise DataError(f"class folder {split_dir / c} holds no images (.jpg/.png).")
        files += [(p, k) for p in names]
    return files


def _fingerprint(files: list[tuple[Path, int]]) -> str:
    """A short hash of every file's path, class and bytes: the cache is rebuilt when any image of
    the folder changes, even to one of the same size (46 MB of JPEGs for the training split:
    about a second to read back from the OS's file cache)."""
    h = hashlib.blake2b(digest_size=16)
    for p, k in files:
        try:
            content = p.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read image {p} ({e}): check its permissions, or re-extract the archive.") from e
        h.update(f"{p}|{k}|{len(content)}\n".encode())
        h.update(content)
    return h.hexdigest()[:16]


def _decode(files: list[tuple[Path, int]]) -> ImageSet:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    x = np.empty((len(files), *IMAGE_SHAPE), dtype=np.uint8)  # (N, H, W, C)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as im:
                im = im.convert("RGB") if im.mode != "RGB" else im
                a = np.asarray(im)
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise DataError(f"cannot decode image {path} ({e}). The file is corrupt: "
                            f"delete it or re-extract the archive.") from e
        if a.shape != IMAGE_SHAPE:
            raise DataError(f"image {path} is {a.shape[1]}x{a.shape[0]}, expected 32x32 RGB: "
                            f"this is not a CIFAR-10 image (remove it or resize the folder).")
        x[i] = a
    y = torch.tensor([k for _, k in files], dtype=torch.int64)
    return ImageSet(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), y)  # (N, C, H, W)


def _load_torchvision(split: str, download: bool) -> ImageSet:
    from torchvision.datasets import CIFAR10

    target = cache_dir() / "torchvision"
    try:
        ds = CIFAR10(str(target), train=(split == "train"), download=download)
    except RuntimeError as e:  # not downloaded and download=False
        raise DataError(f"CIFAR-10 is not in {target} and download is off. Set CVAE_DATA_DIR to "
                        f"an ImageFolder copy, or allow download=True with internet.") from e
    except OSError as e:  # URLError, socket errors: no network
        raise DataError(f"could not download CIFAR-10 ({e}). Without internet, set CVAE_DATA_DIR "
                        f"to an offline ImageFolder copy (<root>/{{train,test}}/<class>/*.jpg).") from e
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)
    return ImageSet(x, torch.tensor(ds.targets, dtype=torch.int64))
