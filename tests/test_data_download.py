"""Download: checksum verification and atomic writes against local servers only (no network)."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
import time

import pytest

from tfminv.data import download
from tfminv.errors import ConfigError, DataError


@pytest.fixture()
def served(tmp_path):
    """An http.server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield www, f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def test_mnist_download_verifies_official_checksums(data_dir, served, tmp_path):
    www, url = served
    for f in (data_dir / "mnist").glob("*.gz"):
        shutil.copy(f, www / f.name)
    got = download.download("mnist", data_dir=tmp_path / "raw", base_url=url)
    assert sorted(p.name for p in got) == sorted(download.MNIST_FILES)
    assert all(p.read_bytes() == (data_dir / "mnist" / p.name).read_bytes() for p in got)
    # second call: files verified in place, nothing fetched (server content no longer needed)
    for f in www.iterdir():
        f.unlink()
    assert len(download.download("mnist", data_dir=tmp_path / "raw", base_url=url)) == 4


def test_checksum_mismatch_leaves_nothing(data_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", src / "f.gz")
    dest = tmp_path / "out" / "f.gz"
    with pytest.raises(DataError, match="checksum .* expected 0000"):
        download.fetch((src / "f.gz").as_uri(), dest, checksum="0" * 64, kind="sha256")
    assert not dest.exists() and not list(dest.parent.glob("*"))
    good = download._digest(src / "f.gz", "sha256")
    assert download.fetch((src / "f.gz").as_uri(), dest, checksum=good, kind="sha256") == dest
    assert dest.read_bytes() == (src / "f.gz").read_bytes()


def test_corrupt_download_rejected(data_dir, served, tmp_path):
    www, url = served
    for f in (data_dir / "mnist").glob("*.gz"):
        data = f.read_bytes()
        (www / f.name).write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt gzip"):
        download.download("mnist", data_dir=tmp_path / "raw", base_url=url)
    assert not list((tmp_path / "raw" / "mnist").glob("*.gz"))


def test_offline_fails_fast_with_where_to_put_files(tmp_path):
    # a port nobody listens on: connection refused
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.time()
    with pytest.raises(DataError) as e:
        download.download("cifar10", data_dir=tmp_path, base_url=f"http://127.0.0.1:{port}/")
    assert time.time() - t0 < 5
    msg = str(e.value)
    assert "offline?" in msg and "cifar-10-python.tar.gz" in msg and str(tmp_path / "cifar10") in msg
    assert "\n" not in msg


def test_silent_server_times_out(tmp_path):
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)  # accepts connections but never answers
    try:
        t0 = time.time()
        with pytest.raises(DataError, match="timeout 0.5 s"):
            download.download("mnist", data_dir=tmp_path,
                              base_url=f"http://127.0.0.1:{lst.getsockname()[1]}/", timeout=0.5)
        assert time.time() - t0 < 5
    finally:
        lst.close()


def test_not_downloadable():
    with pytest.raises(ConfigError, match="cannot be downloaded"):
        download.download("celeba")


def test_build_with_download_fetches_missing_files(data_dir, served, tmp_path, monkeypatch):
    from tfminv.data import build

    www, url = served
    for f in (data_dir / "mnist").glob("*.gz"):
        shutil.copy(f, www / f.name)
    monkeypatch.setitem(download.DOWNLOADABLE, "mnist",
                        ("mnist", url, download.MNIST_FILES, "sha256-gunzipped"))
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match="--download"):
        build.build("mnist", data_dir=raw, records_dir=tmp_path / "r", limit=10)
    rows = build.build("mnist", data_dir=raw, records_dir=tmp_path / "r", limit=10, download=True)
    assert [r["count"] for r in rows] == [10, 10]
    assert sorted(p.name for p in (raw / "mnist").iterdir()) == sorted(download.MNIST_FILES)
