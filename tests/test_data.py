import io
import warnings

import numpy as np
import pytest
from PIL import Image

import torch

from engine.data import (SYMMETRIES, TEXTURES, TEXTURES_V1, TEXTURES_V3, TEXTURES_V4, TEXTURES_V5, aspect_ratio,
                         augment, crops_from, fit_image, folder, load_dataset, load_image, oval_images, textures_v4,
                         textures_v5, tile_split)
from engine.errors import EngineError


def test_train_and_test_crops_share_no_pixel():
    # pixel ids as the image: every crop carries the ids of the pixels it came from
    h, w = 150, 230
    ids = np.arange(h * w, dtype=np.float32).reshape(1, h, w)
    rng = np.random.default_rng(0)
    train = crops_from(ids, 16, "train", 3000, rng)
    test = crops_from(ids, 16, "test", 1000, rng)
    assert not set(np.unique(train)) & set(np.unique(test))
    tiles = tile_split((h, w), 24)
    assert tiles["train"] and tiles["test"] and not set(tiles["train"]) & set(tiles["test"])
    # the test tiles are spread over the image, not one corner
    rows = {r for r, _ in tiles["test"]}
    cols = {c for _, c in tiles["test"]}
    assert len(rows) > 2 and len(cols) > 2


def test_textures_are_deterministic_and_well_formed():
    a = load_dataset("textures", "train", 32, 1, n_per_class=5, seed=3)
    b = load_dataset("textures", "train", 32, 1, n_per_class=5, seed=3)
    assert np.array_equal(a.images, b.images)
    assert a.images.shape == (5 * len(TEXTURES), 1, 32, 32) and a.images.dtype == np.float32
    assert len(a.classes) >= 8 and 0 <= a.images.min() and a.images.max() <= 1
    c = load_dataset("textures", "train", 32, 1, n_per_class=5, seed=4)
    assert not np.array_equal(a.images, c.images)
    assert len(a.symmetries) == len(a.classes) and set(a.symmetries) <= set(SYMMETRIES)


def test_previous_classes_stay_reachable_with_their_crops():
    v1 = load_dataset("textures-v1", "test", 32, 1, n_per_class=4)
    assert v1.classes == list(TEXTURES_V1) and "petals" in v1.classes
    # the same crops as before the classes were re-chosen: brick's stream depends on its name alone
    assert np.array_equal(v1.of_class(0), load_dataset("textures", "test", 32, 1, n_per_class=4).of_class(0))


def test_the_fourth_version_replaces_gravel_by_blobs_in_its_place():
    assert list(TEXTURES_V4) == [("blobs" if k == "gravel" else k) for k in TEXTURES_V3]
    v3 = load_dataset("textures-v3", "test", 32, 1, n_per_class=8)
    v4 = load_dataset("textures-v4", "test", 32, 1, n_per_class=8)
    same = [k for k in v3.classes if k in v4.classes]
    for k in same:                    # every other class is cut exactly as before
        assert np.array_equal(v3.of_class(v3.classes.index(k)), v4.of_class(v4.classes.index(k))), k
    blobs = textures_v4("train", 32, 1, n_per_class=200, names=["blobs"]).images
    # rounded two-level regions: every crop holds both levels, with the photographs' contrast
    sd = blobs.std(axis=(1, 2, 3))
    assert sd.min() > 0.05 and 0.1 < np.median(sd) < 0.25
    assert (blobs < 0.35).mean() > 0.3 and (blobs > 0.65).mean() > 0.3
    assert np.array_equal(blobs, textures_v4("train", 32, 1, n_per_class=200, names=["blobs"]).images)


def test_the_fifth_version_cuts_stars_at_half_resolution_and_every_other_class_as_before():
    assert list(TEXTURES_V5) == list(TEXTURES_V4)
    v4 = load_dataset("textures-v4", "test", 32, 1, n_per_class=8)
    v5 = load_dataset("textures-v5", "test", 32, 1, n_per_class=8)
    stars = v5.classes.index("stars")
    for c, k in enumerate(v5.classes):
        assert np.array_equal(v4.of_class(c), v5.of_class(c)) == (c != stars), k
    full, half = TEXTURES_V4["stars"].image(1), TEXTURES_V5["stars"].image(1)     # the same field, halved
    assert half.shape[1:] == (full.shape[1] // 2, full.shape[2] // 2)
    assert abs(float(half.mean()) - float(full.mean())) < 1e-3
    crops = textures_v5("train", 32, 1, n_per_class=64, names=["stars"]).images
    assert crops.std(axis=(1, 2, 3)).min() >= 0.05             # no empty sky, as in textures-v3 and v4


def test_every_texture_class_has_room_for_disjoint_train_and_test_tiles():
    for name, source in {**TEXTURES, **TEXTURES_V4}.items():
        tiles = tile_split(source.image(1).shape[1:], 48)
        assert len(tiles["train"]) >= 6 and len(tiles["test"]) >= 3, name      # of 48 x 48 pixels each


def test_augment_keeps_each_class_within_its_symmetries():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(300, 1, 1, 1)
    labels = torch.arange(300) % 3
    out = augment(x, labels, ["none", "flips", "dihedral"], torch.Generator().manual_seed(0))
    seen = [{tuple(o.flatten().tolist()) for o in out[labels == c]} for c in range(3)]
    assert len(seen[0]) == 1 and torch.equal(out[labels == 0][0], x[0])      # never changed
    assert len(seen[1]) == 4                                                  # the four flips
    assert len(seen[2]) == 8                                                  # the dihedral group
    assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)     # pixels moved, not changed


def test_ovals_aspect_ratio_is_the_class():
    ratios = np.array([0.2, 0.5, 1.0, 2.0, 5.0]).repeat(20)
    imgs = oval_images(ratios, 32, np.random.default_rng(0))
    measured = aspect_ratio(imgs)
    per_class = measured.reshape(5, 20).mean(1)
    assert np.all(np.diff(per_class) > 0)
    assert abs(np.log(per_class[2])) < 0.2


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


@pytest.mark.parametrize("make", [
    lambda: _png(Image.new("RGBA", (40, 30), (255, 0, 0, 128))),
    lambda: _png(Image.fromarray(np.full((20, 20), 40000, np.uint16))),
    lambda: _png(Image.new("P", (20, 20))),
    lambda: _png(Image.new("1", (20, 20))),
    lambda: _png(Image.new("LA", (20, 20))),
    lambda: _png(Image.fromarray(np.random.rand(20, 20).astype(np.float32)), format="TIFF"),
    lambda: _png(Image.new("CMYK", (20, 20)), format="JPEG"),
    lambda: _png(Image.new("L", (20, 20)), save_all=True, format="GIF",
                 append_images=[Image.new("L", (20, 20), 255)]),
])
def test_any_mode_loads_to_unit_range(make):
    for channels in (1, 3):
        x = load_image(make(), channels)
        assert x.shape[0] == channels and x.dtype == np.float32
        assert 0 <= x.min() and x.max() <= 1


def test_sixteen_bit_is_scaled_not_clipped():
    x = load_image(_png(Image.fromarray(np.full((20, 20), 32768, np.uint16))), 1)
    assert abs(float(x.mean()) - 0.5) < 0.01


def test_huge_image_is_loaded_and_reduced(huge_png):
    from conftest import HUGE_GREY
    x = fit_image(load_image(huge_png, 1), 32)
    assert x.shape == (1, 32, 32) and np.allclose(x, HUGE_GREY / 255, atol=1e-3)


@pytest.mark.parametrize("data,message", [
    (b"this is text, not a picture", "not a readable image"),
    (_png(Image.new("L", (1, 1))), "1x1"),
    (_png(Image.new("L", (64, 64)))[:40], "not a readable image"),
])
def test_bad_images_raise_clear_errors(data, message):
    with pytest.raises(EngineError, match=message):
        load_image(data, 1)


def test_text_file_named_png(tmp_path):
    p = tmp_path / "fake.png"
    p.write_text("hello")
    with pytest.raises(EngineError, match="fake.png: not a readable image"):
        load_image(p)


def test_missing_file():
    with pytest.raises(EngineError, match="no such file"):
        load_image("/nonexistent/x.png")


def test_class_folder_dataset_skips_unreadable_files(tmp_path):
    for cls, value in (("dark", 30), ("light", 220)):
        d = tmp_path / cls
        d.mkdir()
        for i in range(6):
            Image.new("L", (50 + i, 40), value).save(d / f"{i}.png")
        (d / "broken.png").write_text("nope")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        train = folder(tmp_path, "train", size=16)
        test = folder(tmp_path, "test", size=16)
    assert any("broken.png" in str(m.message) for m in w)
    assert train.classes == ["dark", "light"] and train.images.shape[1:] == (1, 16, 16)
    assert len(train) + len(test) == 12 and len(test) == 2


def test_texture_folder_dataset(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((100, 100)) * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    ds = folder(tmp_path, "train", size=16, n_per_class=7)
    assert ds.classes == ["a", "b"] and ds.images.shape == (14, 1, 16, 16)


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EngineError, match="no class subfolders"):
        folder(tmp_path, "train")


def test_unknown_dataset():
    with pytest.raises(EngineError, match="unknown dataset"):
        load_dataset("nope")
