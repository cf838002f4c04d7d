"""Raw readers on slices of the real datasets: shapes, labels, preprocessing equal to references."""

from __future__ import annotations

import gzip

import cv2
import numpy as np

from tfminv.data import build, load_split, preprocess
from tfminv.data.sources import celeba, mnist


def test_mnist_matches_idx_resized(data_dir, records_dir):
    s = load_split("mnist", "test", data_dir=data_dir, records_dir=records_dir, limit=64)
    assert s.images.shape == (64, 32, 32, 1) and s.images.dtype == np.float32
    raw = np.frombuffer(gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read(),
                        np.uint8, offset=16).reshape(-1, 28, 28)[:64]
    lab = np.frombuffer(gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read(),
                        np.uint8, offset=8)[:64]
    ref = np.stack([cv2.resize(r, (32, 32), interpolation=cv2.INTER_LINEAR) for r in raw])
    np.testing.assert_array_equal(np.round(s.images[..., 0] * 255).astype(np.uint8), ref)
    np.testing.assert_array_equal(s.labels, lab)
    assert s.label_names == tuple("0123456789")
    assert s.metadata["preprocessing"]["resize"] == preprocess.RESIZE_UP


def test_mnist_accepts_uncompressed_idx(data_dir, tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    for f in (data_dir / "mnist").glob("*.gz"):
        (d / f.name[:-3]).write_bytes(gzip.open(f).read())
    found = mnist.find(tmp_path)
    assert all(not f.name.endswith(".gz") for f in found.files)
    loaded = mnist.load(found, 32, limit=10)
    assert loaded.splits["train"].images.shape == (10, 32, 32)
    assert loaded.splits["train"].labels.tolist()[:5] == [5, 0, 4, 1, 9]


def test_grey_equals_cv2_and_pil():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
    ours = preprocess.rgb_to_grey(rgb).astype(int)
    assert np.abs(ours - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(int)).max() <= 1
    try:
        from PIL import Image
    except ImportError:
        return  # PIL is optional; the cv2 comparison above already checks the weights
    np.testing.assert_array_equal(ours, np.asarray(Image.fromarray(rgb).convert("L")))


def test_facescrub_npz_is_grey_of_rgb(data_dir, records_dir):
    s = load_split("facescrub", "all", data_dir=data_dir, records_dir=records_dir)
    assert len(s) == 1851 and s.images.shape[1:] == (64, 64, 1)
    assert len(s.label_names) == 12 and s.label_names[0] == "Alec Baldwin"
    assert np.bincount(s.labels).tolist() == [169, 177, 136, 162, 160, 170, 136, 193, 118, 157,
                                              103, 170]
    with np.load(next((data_dir / "facescrub_subset12").glob("*.npz"))) as z:
        rgb = z["images_rgb"][:20]
    ref = cv2.cvtColor(rgb.reshape(-1, 64, 3), cv2.COLOR_RGB2GRAY).reshape(-1, 64, 64)
    got = np.round(s.images[:20, ..., 0] * 255).astype(int)
    assert np.abs(got - ref.astype(int)).max() <= 1


def test_facescrub_authors_npz_and_tree(data_dir, tmp_path):
    with np.load(next((data_dir / "facescrub_subset12").glob("*.npz"))) as z:
        rgb, labels, gender = z["images_rgb"], z["labels"], z["identity_gender"]
    male = gender[labels] == "male"
    pick = np.r_[np.flatnonzero(male)[:6], np.flatnonzero(~male)[:6]]
    grey = preprocess.rgb_to_grey(rgb[pick])
    a = tmp_path / "a" / "facescrub"
    a.mkdir(parents=True)
    np.savez(a / "facescrub.npz", actor_images=grey[:6], actor_labels=np.zeros(6, int),
             actress_images=grey[6:], actress_labels=np.zeros(6, int))
    rows = build.build("facescrub", data_dir=tmp_path / "a", records_dir=tmp_path / "r1")
    assert rows[0]["count"] == 12
    s = load_split("facescrub", "all", data_dir=tmp_path / "a", records_dir=tmp_path / "r1")
    np.testing.assert_array_equal(np.round(s.images[..., 0] * 255).astype(np.uint8), grey)
    assert s.labels.tolist() == [0] * 6 + [1] * 6  # actress identities kept distinct

    t = tmp_path / "t" / "facescrub"
    for i, k in enumerate(pick):
        d = t / f"person_{labels[k]:02d}"
        d.mkdir(parents=True, exist_ok=True)
        big = cv2.resize(rgb[k][..., ::-1], (128, 128), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(d / f"{i:03d}.png"), big)
    s2 = load_split("facescrub", "all", data_dir=tmp_path / "t", records_dir=tmp_path / "r2")
    assert len(s2) == 12 and s2.images.shape[1:] == (64, 64, 1)
    assert len(s2.label_names) == len(set(labels[pick]))
    # down-up-down round trip stays close to the original grey image
    assert np.abs(s2.images[0, ..., 0] * 255 - grey[0]).mean() < 4


def test_cifar10_jpeg_tarballs_and_python_batches(data_dir, tmp_path, records_dir):
    s = load_split("cifar10", "train", data_dir=data_dir, records_dir=records_dir, limit=30)
    assert s.images.shape == (30, 32, 32, 1) and set(s.labels.tolist()) == {0}
    assert s.label_names[0] == "airplane"
    # official python batches, written from the lossless first images
    import pickle

    with np.load(data_dir / "cifar10" / "cifar10_data_batch_1_first4000_lossless.npz") as z:
        img, lab = z["images"][:60], z["labels"][:60]
    py = tmp_path / "cifar10" / "cifar-10-batches-py"
    py.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        sl = slice(10 * i, 10 * i + 10)
        data = img[sl].transpose(0, 3, 1, 2).reshape(10, -1)
        (py / name).write_bytes(pickle.dumps({b"data": data, b"labels": lab[sl].tolist()}))
    b = load_split("cifar10", "train", data_dir=tmp_path, records_dir=tmp_path / "r")
    assert len(b) == 50
    np.testing.assert_array_equal(b.labels, lab[:50])
    np.testing.assert_array_equal(np.round(b.images[..., 0] * 255).astype(np.uint8),
                                  preprocess.rgb_to_grey(img[:50]))
    assert b.metadata["preprocessing"]["order"] == "official"
    b64 = load_split("cifar10", "test", image_size=64, data_dir=tmp_path, records_dir=tmp_path / "r")
    assert b64.images.shape == (10, 64, 64, 1)
    ref = cv2.resize(preprocess.rgb_to_grey(img[50]), (64, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(np.round(b64.images[0, ..., 0] * 255).astype(np.uint8), ref)


def test_celeba_crop_scales_with_image_width(data_dir):
    """The 89x109 copy and the 178x218 originals give nearly the same 64x64 face crop."""
    from tfminv.data.sources import read_tar_members, decode_image

    big = dict(read_tar_members(data_dir / "celeba" / "celeba_align_178x218_000001-000032.tar"))
    small = {}
    for name, data in read_tar_members(data_dir / "celeba" / "celeba_align_89x109_000001-010000.tar.gz"):
        if name.endswith(("000001.jpg", "000002.jpg", "000003.jpg")):
            small[name.rsplit("/", 1)[-1]] = data
        if len(small) == 3:
            break
    crops = {}
    for tag, src in (("big", big), ("small", small)):
        for name, data in src.items():
            if name.rsplit("/", 1)[-1] in ("000001.jpg", "000002.jpg", "000003.jpg"):
                g = preprocess.to_grey(decode_image(data, name))
                crops[(tag, name.rsplit("/", 1)[-1])] = celeba.preprocess.celeba_crop(g, 64)[0]
    d_same = [np.abs(crops[("big", n)].astype(int) - crops[("small", n)]).mean()
              for n in ("000001.jpg", "000002.jpg", "000003.jpg")]
    d_other = np.abs(crops[("big", "000001.jpg")].astype(int) - crops[("small", "000002.jpg")]).mean()
    assert max(d_same) < 10 < d_other


def test_celeba_splits_labels_attributes(data_dir, records_dir):
    s = load_split("celeba", "train", data_dir=data_dir, records_dir=records_dir, limit=40)
    assert s.images.shape == (40, 64, 64, 1)
    assert s.attributes.shape == (40, 40) and set(np.unique(s.attributes)) <= {-1, 1}
    assert s.attribute_names[0] == "5_o_Clock_Shadow" and len(s.attribute_names) == 40
    with np.load(data_dir / "celeba" / "celeba_subset_000001-010000_labels.npz") as z:
        np.testing.assert_array_equal(s.labels, z["identity"][:40])
        np.testing.assert_array_equal(s.attributes, z["attributes"][:40])
    assert s.metadata["splits"]["valid"]["count"] == 0


def test_att_faces_npz_and_pgm_tree(data_dir, tmp_path, records_dir):
    s = load_split("att_faces", "all", data_dir=data_dir, records_dir=records_dir)
    assert len(s) == 400 and s.images.shape[1:] == (64, 64, 1)
    assert np.bincount(s.labels).tolist() == [10] * 40 and s.label_names[-1] == "s40"
    with np.load(next((data_dir / "att_faces").glob("*.npz"))) as z:
        imgs = z["images"][:20]
    for i, im in enumerate(imgs):
        d = tmp_path / "att_faces" / f"s{i // 10 + 1}"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i % 10 + 1}.pgm"), im)
    t = load_split("att_faces", "all", data_dir=tmp_path, records_dir=tmp_path / "r")
    assert len(t) == 20 and t.labels.tolist() == [0] * 10 + [1] * 10
    np.testing.assert_array_equal(t.images, s.images[:20])
