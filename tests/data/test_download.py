import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import cli
from celebseg_utils.data import download as D, layout
from celebseg_utils.errors import CelebsegError

IDS = (0, 1, 2001)  # two mask folders: 0 and 1
SECRET = "s3cr3t-kaggle-key-0123456789"


def make_raw(root: Path, ids=IDS) -> Path:
    """A tiny CelebAMask-HQ-shaped folder made by hand: photos, two masks each, mapping."""
    rng = np.random.default_rng(0)
    for k in ids:
        layout.image_path(root, k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(layout.image_path(root, k))
        for attr in ("skin", "hair"):
            p = layout.mask_path(root, k, attr)
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((rng.random((8, 8)) > 0.5).astype(np.uint8) * 255).save(p)
    rows = "".join(f"{k:<12}{100000 + k:<12}{100001 + k}.jpg\n" for k in ids)
    layout.mapping_path(root).write_text("idx         orig_idx    orig_file\n" + rows)
    return root


def zip_folder(folder: Path, path: Path, prefix="CelebAMask-HQ") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                name = p.relative_to(folder).as_posix()
                zf.write(p, f"{prefix}/{name}" if prefix else name)
    return path


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path / "src")


@pytest.fixture
def good_zip(tmp_path, raw):
    return zip_folder(raw, tmp_path / "CelebAMask-HQ.zip")


@pytest.fixture
def no_kaggle_credentials(tmp_path, monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR",
                 "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_local_archive_downloads_verifies_and_second_run_is_a_noop(tmp_path, raw, good_zip, capsys):
    out = tmp_path / "data"
    root = D.download_dataset("archive", out, archive=good_zip, progress=False)
    assert root == out / "CelebAMask-HQ"
    for p in raw.rglob("*"):
        if p.is_file():
            assert (root / p.relative_to(raw)).read_bytes() == p.read_bytes()
    marker = json.loads((out / D.MARKER_NAME).read_text())
    assert marker["root"] == "CelebAMask-HQ"
    counts = (marker["images"], marker["mapping_rows"], marker["mask_folders"], marker["mask_files"])
    assert counts == (3, 3, [0, 1], 6)
    assert sorted(p.name for p in out.iterdir()) == [D.MARKER_NAME, "CelebAMask-HQ"]  # no staging left
    assert "verified" in capsys.readouterr().err

    before = _files(out)
    os.utime(good_zip, None)
    assert D.download_dataset("archive", out, archive=good_zip, progress=False) == root
    assert "nothing to do" in capsys.readouterr().err
    assert _files(out) == before  # same files, none rewritten (mtimes unchanged)


def test_marker_goes_stale_when_images_disappear(tmp_path, good_zip):
    out = tmp_path / "data"
    root = D.download_dataset("archive", out, archive=good_zip, progress=False)
    (root / layout.IMAGE_DIR / "1.jpg").unlink()
    with pytest.raises(CelebsegError, match=r"missing 1 of 3 images .*CelebA-HQ-img/1\.jpg"):
        D.download_dataset("archive", out, archive=good_zip, progress=False)


def test_folder_source_is_copied_and_unpacked_copy_is_only_verified(tmp_path, raw, no_kaggle_credentials):
    out = tmp_path / "data"
    root = D.download_dataset("archive", out, archive=raw, progress=False)
    assert root == out / "src" and (root / layout.IMAGE_DIR / "2001.jpg").is_file()
    assert (raw / layout.IMAGE_DIR / "2001.jpg").is_file()  # the user's folder is untouched
    with pytest.raises(CelebsegError, match="is inside --archive"):
        D.download_dataset("archive", raw / "copy", archive=raw, progress=False)
    assert not (raw / "copy").exists()

    # A copy unzipped by hand is verified in place: no download, so no credentials needed.
    out2 = tmp_path / "by_hand"
    shutil.copytree(raw, out2 / "CelebAMask-HQ")
    assert D.download_dataset("kaggle", out2, progress=False) == out2 / "CelebAMask-HQ"
    assert (out2 / D.MARKER_NAME).exists()


def test_missing_kaggle_credentials_give_one_line_error_without_network(tmp_path, monkeypatch,
                                                                         no_kaggle_credentials):
    import kagglehub

    def no_network(*a, **k):
        raise AssertionError("kagglehub called without credentials")

    monkeypatch.setattr(kagglehub, "dataset_download", no_network)
    out = tmp_path / "data"
    with pytest.raises(CelebsegError) as info:
        D.download_dataset("kaggle", out, progress=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "KAGGLE_USERNAME" in msg and "KAGGLE_KEY" in msg and "~/.kaggle/" in msg and "kaggle.json" in msg
    assert D.kaggle_credentials_source() is None

    (no_kaggle_credentials / ".kaggle").mkdir()
    (no_kaggle_credentials / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert D.kaggle_credentials_source() == str(no_kaggle_credentials / ".kaggle" / "kaggle.json")


def test_kaggle_path_calls_kagglehub_and_never_leaks_credentials(tmp_path, monkeypatch, good_zip,
                                                                  no_kaggle_credentials, capsys):
    import kagglehub

    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    calls = []

    def fake_download(handle, path=None, *, force_download=False, output_dir=None):
        # What kagglehub does: download the dataset zip and extract it into output_dir.
        calls.append((handle, output_dir))
        with zipfile.ZipFile(good_zip) as zf:
            zf.extractall(output_dir)
        marker = Path(output_dir) / ".complete" / "someone" / "bundle.complete"
        marker.parent.mkdir(parents=True)
        marker.write_text("")
        return output_dir

    monkeypatch.setattr(kagglehub, "dataset_download", fake_download)
    out = tmp_path / "data"
    root = D.download_dataset("kaggle", out, kaggle_slug="someone/celebamask-copy", progress=False)
    assert calls == [("someone/celebamask-copy", str(out / D.DOWNLOAD_DIR / "kaggle"))]
    assert root == out / "CelebAMask-HQ" and (root / layout.MAPPING_FILE).is_file()
    assert sorted(p.name for p in out.iterdir()) == [D.MARKER_NAME, "CelebAMask-HQ"]  # moved, not copied
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "credentials: environment" in captured.err
    assert all(SECRET.encode() not in p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_kaggle_dataset_that_wraps_the_zip_is_unwrapped(tmp_path, monkeypatch, good_zip,
                                                        no_kaggle_credentials):
    import kagglehub

    monkeypatch.setenv("KAGGLE_API_TOKEN", SECRET)
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle, output_dir=None, **k: shutil.copy(
        good_zip, Path(output_dir) / "CelebAMask-HQ.zip") and output_dir)
    root = D.download_dataset("kaggle", tmp_path / "data", progress=False)
    assert root == tmp_path / "data" / "CelebAMask-HQ"


def test_kaggle_mount_outside_out_is_copied_not_moved(tmp_path, monkeypatch, raw, no_kaggle_credentials):
    import kagglehub

    # Inside a Kaggle notebook kagglehub ignores output_dir and returns the read-only mount.
    mount = tmp_path / "kaggle" / "input" / "celebamaskhq"
    shutil.copytree(raw, mount / "CelebAMask-HQ")
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle: str(mount))
    root = D.download_dataset("kaggle", tmp_path / "data", progress=False)
    assert root == tmp_path / "data" / "CelebAMask-HQ"
    assert (mount / "CelebAMask-HQ" / layout.MAPPING_FILE).is_file()  # the mount is left alone


def test_drive_path_calls_gdown_with_the_id(tmp_path, monkeypatch, good_zip):
    import gdown

    calls = []

    def fake_gdown(url=None, output=None, quiet=False, id=None, **k):
        calls.append((id, output, quiet))
        shutil.copy(good_zip, output)
        return output

    monkeypatch.setattr(gdown, "download", fake_gdown)
    out = tmp_path / "data"
    root = D.download_dataset("drive", out, progress=False)
    assert calls == [(D.DEFAULT_DRIVE_ID, str(out / D.DOWNLOAD_DIR / "CelebAMask-HQ.zip"), True)]
    assert root == out / "CelebAMask-HQ"
    assert not (out / D.DOWNLOAD_DIR).exists()  # the 3 GB zip does not stay beside the data

    monkeypatch.setattr(gdown, "download", lambda **k: None)  # what gdown returns on quota errors
    with pytest.raises(CelebsegError, match="Google Drive download of 'other-id' failed.*--source archive"):
        D.download_dataset("drive", tmp_path / "data2", drive_id="other-id", progress=False)
    # Nothing unpacked; only the download folder, where a partial file would wait for a resume.
    assert [p.name for p in (tmp_path / "data2").iterdir()] == [D.DOWNLOAD_DIR]
    assert list((tmp_path / "data2" / D.DOWNLOAD_DIR).iterdir()) == []


def test_wrong_dataset_is_refused_before_unpacking(tmp_path):
    wrong = tmp_path / "celeba.zip"
    with zipfile.ZipFile(wrong, "w") as zf:
        zf.writestr("img_align_celeba/000001.jpg", b"jpeg")
        zf.writestr("list_attr_celeba.csv", b"a,b\n")
    with pytest.raises(CelebsegError, match=r"celeba\.zip is not CelebAMask-HQ: it has no CelebA-HQ-img/ "
                                            r"folder \(top level: img_align_celeba, list_attr_celeba\.csv\)"):
        D.download_dataset("archive", tmp_path / "data", archive=wrong, progress=False)
    assert not (tmp_path / "data").exists()


def test_incomplete_dataset_lists_what_is_missing(tmp_path, raw):
    (raw / layout.IMAGE_DIR / "0.jpg").unlink()
    shutil.rmtree(raw / layout.MASK_DIR / "1")
    archive = zip_folder(raw, tmp_path / "partial.zip")
    with pytest.raises(CelebsegError) as info:
        D.download_dataset("archive", tmp_path / "data", archive=archive, progress=False)
    msg = str(info.value)
    assert "missing 1 of 3 images listed in the mapping file (e.g. CelebA-HQ-img/0.jpg)" in msg
    assert "mask folder(s) 1 of CelebAMask-HQ-mask-anno/" in msg
    assert not (tmp_path / "data" / D.MARKER_NAME).exists()

    (raw / layout.MAPPING_FILE).unlink()
    with pytest.raises(CelebsegError, match="missing .*the mapping file CelebA-HQ-to-CelebA-mapping.txt"):
        D.verify_layout(raw)


def test_truncated_download_names_the_file(tmp_path, good_zip):
    data = good_zip.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[:-200])
    with pytest.raises(CelebsegError, match=r"cut\.zip is a truncated or corrupt zip"):
        D.download_dataset("archive", tmp_path / "data", archive=cut, progress=False)


def test_cli(tmp_path, good_zip, capsys):
    out = tmp_path / "data"
    assert cli.main(["download", "--source", "archive", "--archive", str(good_zip), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "CelebAMask-HQ")
    assert cli.main(["download", "--source", "archive", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: --source archive needs --archive FILE")
    assert cli.main(["download", "--source", "drive", "--archive", "x.zip", "--out", str(out)]) == 2
    assert "--archive is only read with --source archive" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["download", "--source", "ftp", "--out", str(out)])
    assert exc.value.code == 2


def test_round_trip_of_the_synthetic_generator(tmp_path):
    from celebseg_utils.data.synthetic import generator as synthetic

    raw = synthetic.write_synthetic_dataset(tmp_path / "synth", count=3, image_size=32, seed=0,
                                            progress=False)
    archive = zip_folder(Path(raw), tmp_path / "synth.zip")
    root = D.download_dataset("archive", tmp_path / "data", archive=archive, progress=False)
    counts = json.loads((tmp_path / "data" / D.MARKER_NAME).read_text())
    assert (counts["images"], counts["mapping_rows"], counts["mask_folders"]) == (3, 3, [0])
    assert len(list((root / layout.IMAGE_DIR).glob("*.jpg"))) == 3


# -- resuming an interrupted download -------------------------------------------------------

def test_archive_copy_resumes_from_its_partial_file(tmp_path, good_zip, capsys):
    data = good_zip.read_bytes()
    dest = tmp_path / "drive" / "CelebAMask-HQ.zip"
    dest.parent.mkdir()
    cut = len(data) * 2 // 5
    (dest.parent / "CelebAMask-HQ.zip.part").write_bytes(data[:cut])  # a copy cut short
    assert D.copy_resumable(good_zip, dest, progress=False, chunk=64) == dest
    assert dest.read_bytes() == data and not (dest.parent / "CelebAMask-HQ.zip.part").exists()
    assert f"resumed the copy of CelebAMask-HQ.zip at {cut:,} of {len(data):,} bytes" in capsys.readouterr().err
    # A partial file that is not the start of this archive is started again, not glued on.
    dest.unlink()
    (dest.parent / "CelebAMask-HQ.zip.part").write_bytes(b"x" * cut)
    D.copy_resumable(good_zip, dest, progress=False)
    assert dest.read_bytes() == data and "resumed" not in capsys.readouterr().err
    root = D.download_dataset("archive", tmp_path / "out", archive=dest, progress=False)
    assert D.verify_layout(root)["images"] == len(IDS)


class _RangeServer:
    """A local HTTP server of one file that honours ``Range`` (as Google Drive does), and
    records the ranges it was asked for."""

    def __init__(self, payload: bytes):
        import http.server
        import threading

        asked = self.asked = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                asked.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/zip")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/CelebAMask-HQ.zip"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_gdown_resumes_its_partial_file(tmp_path, good_zip):
    pytest.importorskip("gdown")
    data = good_zip.read_bytes()
    server = _RangeServer(data)
    try:
        dest = tmp_path / "keep" / "CelebAMask-HQ.zip"
        dest.parent.mkdir()
        cut = len(data) // 3
        # What an interrupted gdown leaves: "<name><8 random characters>.part".
        (dest.parent / "CelebAMask-HQ.zipab12cd34.part").write_bytes(data[:cut])
        assert D.fetch_drive(None, dest, progress=False, url=server.url) == dest
        # gdown opens the file once to learn its name, then asks for the missing bytes only.
        assert server.asked == [None, f"bytes={cut}-"]
        assert dest.read_bytes() == data and list(dest.parent.iterdir()) == [dest]
        assert D.fetch_drive(None, dest, progress=False, url=server.url) == dest  # done: no request
        assert len(server.asked) == 2
    finally:
        server.close()
