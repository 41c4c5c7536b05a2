"""Data loading from an ImageFolder, its clear errors, subsets, splits and the batch iterator."""
from __future__ import annotations

import shutil
from urllib.error import URLError

import pytest
import torch

from cvae_lib import data
from cvae_lib.data import DataError, ImageSet, load_cifar10


def test_loads_image_folder_in_canonical_order(image_folder):
    s = load_cifar10("train", image_folder)
    assert s.x.shape == (30, 3, 32, 32) and s.x.dtype == torch.uint8
    assert s.y.tolist() == [k for k in range(10) for _ in range(3)]
    # the marker pixel (class id, index) came through decoding at the right place
    assert s.x[4, :, 0, 0].tolist() == [1, 1, 7]


def test_accepts_parent_folder_and_env(image_folder, tmp_path, monkeypatch):
    nested = tmp_path / "outer"
    shutil.copytree(image_folder, nested / "cifar10")
    monkeypatch.setenv("CVAE_DATA_DIR", str(nested))
    assert len(load_cifar10("test")) == 30


def test_cache_is_used_and_equal(image_folder, monkeypatch):
    first = load_cifar10("train", image_folder)
    monkeypatch.setattr(data, "_decode", lambda files: pytest.fail("decoded again despite the cache"))
    second = load_cifar10("train", image_folder)
    assert torch.equal(first.x, second.x) and torch.equal(first.y, second.y)


def test_an_image_changed_in_place_is_served_with_its_new_pixels(image_folder):
    import numpy as np
    from PIL import Image

    before = load_cifar10("train", image_folder)
    target = image_folder / "train" / "automobile" / "0001.png"          # index 4 in the set
    a = np.asarray(Image.open(target)).copy()
    a[5:9, 5:9] = 255 - a[5:9, 5:9]
    Image.fromarray(a).save(target)
    after = load_cifar10("train", image_folder)
    assert torch.equal(after.x[4].permute(1, 2, 0), torch.from_numpy(a))
    assert not torch.equal(after.x[4], before.x[4])


def test_same_size_same_name_edit_is_caught(image_folder):
    """A byte flipped inside a file (same size, same name, same mtime kept) changes the fingerprint."""
    import os

    first = data._fingerprint(data._list_images(image_folder / "train"))
    target = image_folder / "train" / "cat" / "0000.png"
    stat = target.stat()
    raw = bytearray(target.read_bytes())
    raw[-20] ^= 0xFF
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data._fingerprint(data._list_images(image_folder / "train")) != first


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong pixels"])
def test_a_damaged_cache_file_is_named_and_rebuilt(image_folder, capsys, damage):
    good = load_cifar10("train", image_folder)
    (cache_file,) = (image_folder.parent / "cache").glob("cifar10-train-*.pt")
    if damage == "truncate":
        cache_file.write_bytes(cache_file.read_bytes()[:1000])
    elif damage == "garbage":
        cache_file.write_bytes(b"not a torch file")
    else:                                                   # a valid file whose pixels were altered
        blob = torch.load(cache_file, weights_only=True)
        blob["x"][0, 0, 0, 0] ^= 1
        torch.save(blob, cache_file)
    again = load_cifar10("train", image_folder)
    assert torch.equal(again.x, good.x) and torch.equal(again.y, good.y)
    out = capsys.readouterr().out
    assert f"the image cache {cache_file} is damaged" in out and "decoding the images again" in out
    load_cifar10("train", image_folder)                     # rebuilt: no message the next time
    assert "damaged" not in capsys.readouterr().out


def test_an_unwritable_cache_folder_still_loads_and_says_why(image_folder, monkeypatch, capsys):
    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(data, "atomic_write", full_disk)
    assert len(load_cifar10("train", image_folder)) == 30
    assert "could not write the image cache" in capsys.readouterr().out


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(DataError, match="does not exist.*CVAE_DATA_DIR"):
        load_cifar10("train", tmp_path / "nope")


def test_missing_split(image_folder):
    shutil.rmtree(image_folder / "test")
    with pytest.raises(DataError, match="test is missing"):
        load_cifar10("test", image_folder, cache=False)


def test_missing_class_names_it(image_folder):
    shutil.rmtree(image_folder / "train" / "frog")
    with pytest.raises(DataError, match="frog missing"):
        load_cifar10("train", image_folder, cache=False)


def test_corrupt_image_names_the_file(image_folder):
    bad = image_folder / "train" / "cat" / "0001.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot decode image .*cat/0001\.png.*corrupt"):
        load_cifar10("train", image_folder, cache=False)


def test_wrong_size_names_the_file(image_folder):
    from PIL import Image
    Image.new("RGB", (64, 48)).save(image_folder / "train" / "dog" / "0000.png")
    with pytest.raises(DataError, match=r"dog/0000\.png is 64x48, expected 32x32"):
        load_cifar10("train", image_folder, cache=False)


def test_no_network_gives_clear_error(monkeypatch, tmp_path):
    """Without a data folder, the torchvision download is tried; its network failure is explained."""
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.delenv("CVAE_DATA_DIR", raising=False)
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match="could not download CIFAR-10.*CVAE_DATA_DIR"):
        load_cifar10("train")


def test_subset_by_class_and_count_is_seeded(image_set):
    s = image_set(200)
    a = s.subset(["frog", 0], n_per_class=5, seed=3)
    assert sorted(a.y.tolist()) == [0] * 5 + [6] * 5
    assert torch.equal(a.x, s.subset(["frog", 0], n_per_class=5, seed=3).x)
    assert not torch.equal(a.x, s.subset(["frog", 0], n_per_class=5, seed=4).x)
    with pytest.raises(DataError, match="unknown class 'plane'"):
        s.subset(["plane"])


def test_subset_without_classes_keeps_every_class_the_set_holds(image_set):
    frogs = image_set(200).subset(["frog"])
    assert frogs.subset(n_per_class=3).y.tolist() == [6, 6, 6]          # not an error for 9 missing classes
    assert torch.bincount(image_set(200).subset(n_per_class=2).y).tolist() == [2] * 10
    with pytest.raises(DataError, match="class 'airplane' has no images in this set; available: \\['frog'\\]"):
        frogs.subset(["airplane"])                                       # a named class must be there


def test_split_is_stratified_and_disjoint(image_set):
    s = image_set(200)
    s.x[:, 0, 0, 0] = torch.arange(len(s)).to(torch.uint8)  # tag each image
    train, val = s.split(4, seed=0)
    assert torch.bincount(val.y).tolist() == [4] * 10 and len(train) == len(s) - 40
    tags = set(train.x[:, 0, 0, 0].tolist()) | set(val.x[:, 0, 0, 0].tolist())
    assert len(tags) == len(s)  # every image in exactly one part


def test_batches_cover_every_index_once_per_epoch(image_set):
    s = image_set(70)
    s.x[:, 0, 0, 0] = torch.arange(len(s)).to(torch.uint8)
    for epoch in range(2):
        seen = [int(v) for x, _ in s.batches(16, epoch=epoch) for v in (x[:, 0, 0, 0] * 255).round()]
        assert sorted(seen) == list(range(len(s)))
    order0 = [x[:, 0, 0, 0] for x, _ in s.batches(16, epoch=0)]
    order1 = [x[:, 0, 0, 0] for x, _ in s.batches(16, epoch=1)]
    assert not torch.equal(torch.cat(order0), torch.cat(order1))  # reshuffled per epoch


def test_batches_values_and_flips(image_set):
    s = image_set(20)
    x, y = next(s.batches(len(s), shuffle=False))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.allclose(x * 255, s.x.float())
    xf, _ = next(s.batches(len(s), shuffle=False, hflip=True, seed=1))
    flipped = [(torch.equal(a, b.flip(2)) and not torch.equal(a, b)) for a, b in zip(xf, x)]
    same = [torch.equal(a, b) for a, b in zip(xf, x)]
    assert all(f or s_ for f, s_ in zip(flipped, same)) and 0 < sum(flipped) < len(x)



def test_random_translate_shifts_each_image_within_the_pad_with_reflection():
    from cvae_lib.data import random_translate
    x = torch.rand(64, 3, 8, 8)
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    shifts = set()
    for i in range(len(x)):      # every output is one 8x8 window of its own padded image
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert hits, f"image {i} is not a shifted copy of itself"
        shifts.add(hits[0])
    assert len(shifts) > 10      # offsets differ between images
    again = random_translate(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                           # seeded: a resumed run repeats it
    assert torch.equal(random_translate(x, 0, torch.Generator()), x)


def test_batches_translate_keeps_labels_and_range(image_folder):
    s = load_cifar10("train", image_folder)
    x, y = next(s.batches(30, shuffle=False, translate=2))
    assert x.shape == (30, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(y, s.y)


def test_subset_refuses_an_empty_set_and_a_count_below_one():
    """An empty ImageSet is a DataError (not torch.cat's), and n_per_class=-1 is refused instead of
    silently keeping all but one image of each class."""
    empty = ImageSet(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="holds no images"):
        empty.subset()
    some = ImageSet(torch.zeros(40, 3, 32, 32, dtype=torch.uint8), torch.arange(40) % 2)
    for bad in (-1, 0, 2.5):
        with pytest.raises(ValueError, match="n_per_class"):
            some.subset(n_per_class=bad)
    assert len(some.subset(n_per_class=3)) == 6
