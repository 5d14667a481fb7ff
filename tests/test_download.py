"""inpaintflow.tasks.data.download against a local HTTP server on 127.0.0.1 (tests/http_server.py); no internet."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from inpaintflow.tasks.data.archives import BadArchiveError, UnsafeArchiveError, safe_extract
from inpaintflow.tasks.data.download import (Checksum, ChecksumError, DownloadError, UnverifiedDownloadWarning,
                                             download, file_digest, part_path)

try:
    from http_server import http_server, serve_directory  # noqa: F401  (fixture import)
except ModuleNotFoundError:  # pragma: no cover - only if tests/ ever becomes a package
    from tests.http_server import http_server, serve_directory  # noqa: F401

SIZE = 300_000
CUT = 100_000


@pytest.fixture
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def www(tmp_path: Path, payload: bytes) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.bin").write_bytes(payload)
    return root


def sha256(data: bytes) -> Checksum:
    return Checksum.sha256(hashlib.sha256(data).hexdigest())


# ---------------------------------------------------------------------------------------------
# Checksum


def test_checksum_validates_and_normalises():
    digest = hashlib.md5(b"x").hexdigest()
    assert Checksum.md5(digest.upper()) == Checksum("md5", digest)
    with pytest.raises(ValueError, match="md5"):
        Checksum.md5("z" * 32)
    with pytest.raises(ValueError, match="64 hex digits"):
        Checksum.sha256(digest)  # an md5-length string
    with pytest.raises(ValueError, match="sha1"):
        Checksum("sha1", "0" * 40)


def test_file_digest(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc" * 1000)
    assert file_digest(f, chunk_size=7) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert file_digest(f, "md5") == hashlib.md5(b"abc" * 1000).hexdigest()


# ---------------------------------------------------------------------------------------------
# download


def test_plain_download(tmp_path, www, payload):
    dest = tmp_path / "out" / "data.bin"
    seen = []
    with serve_directory(www) as server:
        got = download(server.url("data.bin"), dest, sha256(payload), chunk_size=64 * 1024,
                       progress=lambda done, total: seen.append((done, total)))
    assert got == dest and dest.read_bytes() == payload
    assert not part_path(dest).exists()
    assert [r.user_agent for r in server.requests] == ["inpaintflow"]
    assert server.range_requests == []
    assert seen[-1] == (SIZE, SIZE)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_md5_checksum(tmp_path, www, payload):
    with serve_directory(www) as server:
        dest = download(server.url("data.bin"), tmp_path / "d.bin",
                        Checksum.md5(hashlib.md5(payload).hexdigest()))
    assert dest.read_bytes() == payload


def test_resume_after_cut_connection(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    with serve_directory(www, cut_after_bytes=CUT) as server:
        url = server.url("data.bin")
        with pytest.raises(DownloadError, match="short read|connection lost") as info:
            download(url, dest, sha256(payload), chunk_size=32 * 1024)
        assert url in str(info.value)
        assert part_path(dest).stat().st_size == CUT
        assert not dest.exists()

        download(url, dest, sha256(payload), chunk_size=32 * 1024)
    assert dest.read_bytes() == payload
    assert not part_path(dest).exists()
    assert server.range_requests == [f"bytes={CUT}-"]
    assert [r.status for r in server.requests] == [200, 206]
    assert server.requests[1].body_bytes == SIZE - CUT


def test_resume_twice(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    with serve_directory(www, cut_after_bytes=CUT, cut_times=2) as server:
        for _ in range(2):
            with pytest.raises(DownloadError):
                download(server.url("data.bin"), dest, sha256(payload))
        assert part_path(dest).stat().st_size == 2 * CUT
        download(server.url("data.bin"), dest, sha256(payload))
    assert dest.read_bytes() == payload
    assert server.range_requests == [f"bytes={CUT}-", f"bytes={2 * CUT}-"]


def test_206_for_another_range_starts_over(tmp_path, www, payload, monkeypatch):
    server_module = sys.modules[serve_directory.__module__]
    monkeypatch.setattr(server_module, "_parse_range", lambda header, size: (0, size - 1))
    dest = tmp_path / "data.bin"
    part_path(dest).write_bytes(payload[:CUT])
    with serve_directory(www) as server:
        download(server.url("data.bin"), dest, sha256(payload))
    assert dest.read_bytes() == payload
    assert [(r.range, r.status) for r in server.requests] == [(f"bytes={CUT}-", 206), (None, 200)]


def test_server_ignoring_range_restarts_from_zero(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    with serve_directory(www, cut_after_bytes=CUT, ignore_range=True) as server:
        with pytest.raises(DownloadError):
            download(server.url("data.bin"), dest, sha256(payload))
        download(server.url("data.bin"), dest, sha256(payload))
    assert dest.read_bytes() == payload
    assert server.range_requests == [f"bytes={CUT}-"]  # asked for a resume...
    assert [r.status for r in server.requests] == [200, 200]  # ...and got the whole file


def test_complete_part_answered_416_is_verified(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    part_path(dest).write_bytes(payload)  # a previous attempt got everything, then died
    with serve_directory(www) as server:
        download(server.url("data.bin"), dest, sha256(payload))
    assert dest.read_bytes() == payload
    assert [(r.range, r.status) for r in server.requests] == [(f"bytes={SIZE}-", 416)]


def test_oversized_part_is_discarded(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    part_path(dest).write_bytes(b"\0" * (SIZE + 10))
    with serve_directory(www) as server:
        download(server.url("data.bin"), dest, sha256(payload))
    assert dest.read_bytes() == payload
    assert [r.status for r in server.requests] == [416, 200]


def test_checksum_mismatch(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    wrong = sha256(b"something else")
    actual = hashlib.sha256(payload).hexdigest()
    with serve_directory(www) as server:
        url = server.url("data.bin")
        with pytest.raises(ChecksumError) as info:
            download(url, dest, wrong)
    message = str(info.value)
    assert url in message and wrong.hexdigest in message and actual in message
    assert str(dest) in message
    assert isinstance(info.value, DownloadError)
    assert not dest.exists() and not part_path(dest).exists()


def test_404_names_url_and_status(tmp_path, www):
    with serve_directory(www) as server:
        url = server.url("missing.bin")
        with pytest.raises(DownloadError) as info:
            download(url, tmp_path / "m.bin", sha256(b""))
    assert url in str(info.value) and "404" in str(info.value)
    assert info.value.status == 404
    assert not part_path(tmp_path / "m.bin").exists()


def test_connection_refused_is_download_error(tmp_path):
    with socket.socket() as s:  # a port that nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(DownloadError, match=url):
        download(url, tmp_path / "x.bin", sha256(b""), timeout_s=5)


def test_existing_valid_dest_makes_no_request(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    dest.write_bytes(payload)
    with serve_directory(www) as server:
        assert download(server.url("data.bin"), dest, sha256(payload)) == dest
    assert server.requests == []


def test_existing_invalid_dest_is_downloaded_again(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"stale")
    with serve_directory(www) as server:
        download(server.url("data.bin"), dest, sha256(payload))
    assert dest.read_bytes() == payload and len(server.requests) == 1


def test_no_checksum_warns_and_writes(tmp_path, www, payload):
    dest = tmp_path / "data.bin"
    with serve_directory(www) as server:
        with pytest.warns(UnverifiedDownloadWarning, match="not verified"):
            download(server.url("data.bin"), dest, None)
    assert dest.read_bytes() == payload and not part_path(dest).exists()


def test_file_url_and_unsupported_scheme(tmp_path, www, payload):
    dest = download((www / "data.bin").as_uri(), tmp_path / "f.bin", sha256(payload))
    assert dest.read_bytes() == payload
    with pytest.raises(ValueError, match="ftp://example.invalid/x"):
        download("ftp://example.invalid/x", tmp_path / "x", None)


def test_fixture_serves_its_root(http_server, tmp_path):
    (http_server.root / "a.txt").write_bytes(b"hello")
    dest = download(http_server.url("a.txt"), tmp_path / "a.txt", sha256(b"hello"))
    assert dest.read_bytes() == b"hello"
    assert http_server.base_url.startswith("http://127.0.0.1:")


# ---------------------------------------------------------------------------------------------
# safe_extract: helpers building archives in memory


def make_zip(path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def make_tar(path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None,
             hardlinks: dict[str, str] | None = None, fifos: tuple[str, ...] = (),
             mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for links, kind in ((symlinks, tarfile.SYMTYPE), (hardlinks, tarfile.LNKTYPE)):
            for name, target in (links or {}).items():
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, target
                tf.addfile(info)
        for name in fifos:
            info = tarfile.TarInfo(name)
            info.type = tarfile.FIFOTYPE
            tf.addfile(info)
    return path


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    """(archives dir, work dir); the target is work/target, so work/ must stay empty on failure."""
    archives, work = tmp_path / "archives", tmp_path / "work"
    archives.mkdir()
    work.mkdir()
    return archives, work


GOOD = {"a.txt": b"alpha", "sub/b.txt": b"beta" * 1000}


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"])
def test_good_archive_extracts_once(dirs, kind):
    archives, work = dirs
    if kind == "zip":
        archive = make_zip(archives / "good.zip", GOOD)
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[kind]
        archive = make_tar(archives / "good.bin", GOOD, mode=mode)  # suffix says nothing
    target = work / "target"
    assert safe_extract(archive, target) == target
    assert (target / "a.txt").read_bytes() == b"alpha"
    assert (target / "sub" / "b.txt").read_bytes() == b"beta" * 1000
    assert (target / ".extracted").read_text().strip() == file_digest(archive)
    assert sorted(p.name for p in work.iterdir()) == ["target"]  # no temp dirs left

    (target / "sentinel").write_text("left alone")  # a second call must not re-extract
    safe_extract(archive, target)
    assert (target / "sentinel").exists()


def test_stale_target_is_replaced(dirs):
    archives, work = dirs
    target = work / "target"
    (target / "old").mkdir(parents=True)
    (target / "old" / "junk.txt").write_text("half-extracted leftovers")
    safe_extract(make_zip(archives / "good.zip", GOOD), target)
    assert not (target / "old").exists() and (target / "a.txt").exists()
    other = make_tar(archives / "other.tar", {"c.txt": b"gamma"})
    safe_extract(other, target)  # a different archive: its marker does not match
    assert sorted(p.name for p in target.iterdir()) == [".extracted", "c.txt"]
    assert sorted(p.name for p in work.iterdir()) == ["target"]


def assert_rejected(archive: Path, work: Path, member: str) -> UnsafeArchiveError:
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, work / "target")
    assert str(archive) in str(info.value) and repr(member) in str(info.value)
    assert info.value.member == member
    assert list(work.iterdir()) == []  # neither the target nor a temp dir nor an escapee
    return info.value


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "..\\evil.txt"])
def test_zip_slip_rejected(dirs, tmp_path, name):
    archives, work = dirs
    archive = make_zip(archives / "slip.zip", {"ok.txt": b"x", name: b"evil"})
    assert_rejected(archive, work, name)
    assert not (tmp_path / "evil.txt").exists()


def test_tar_slip_rejected(dirs, tmp_path):
    archives, work = dirs
    archive = make_tar(archives / "slip.tar", {"ok.txt": b"x", "a/../../evil.txt": b"evil"})
    assert_rejected(archive, work, "a/../../evil.txt")
    assert not (tmp_path / "evil.txt").exists()


def test_tar_absolute_member_rejected(dirs, tmp_path):
    archives, work = dirs
    existed = Path("/tmp/evil").exists()
    error = assert_rejected(make_tar(archives / "abs.tar", {"/tmp/evil": b"evil"}), work,
                            "/tmp/evil")
    assert "absolute" in str(error)
    assert Path("/tmp/evil").exists() == existed
    inside_tmp = str(tmp_path / "abs-evil.txt")  # an absolute path we can check stays absent
    assert_rejected(make_tar(archives / "abs2.tar", {inside_tmp: b"evil"}), work, inside_tmp)
    assert not Path(inside_tmp).exists()


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_symlink_out_of_target_rejected(dirs, fmt):
    archives, work = dirs
    links = {"data/passwd": "../../etc/passwd"}
    archive = (make_tar(archives / "link.tar", {"ok.txt": b"x"}, symlinks=links) if fmt == "tar"
               else make_zip(archives / "link.zip", {"ok.txt": b"x"}, symlinks=links))
    error = assert_rejected(archive, work, "data/passwd")
    assert "outside" in str(error)


def test_chained_symlinks_escaping_rejected(dirs):
    # each link looks harmless on its own text: "b/c/../.." normalises to "."; but b -> "."
    # makes b/c/../.. the target's parent once b exists on disk
    archives, work = dirs
    archive = make_tar(archives / "chain.tar", {}, symlinks={"b": ".", "a": "b/c/../.."})
    assert_rejected(archive, work, "a")


def test_file_written_through_symlink_rejected(dirs):
    archives, work = dirs
    archive = make_tar(archives / "through.tar", {"up/evil.txt": b"evil"}, symlinks={"up": ".."})
    assert_rejected(archive, work, "up")


def test_marker_name_reserved(dirs):
    archives, work = dirs
    assert_rejected(make_zip(archives / "m.zip", {".extracted/x": b"x"}), work, ".extracted/x")


def test_hardlink_and_fifo_rejected(dirs):
    archives, work = dirs
    assert_rejected(make_tar(archives / "hard.tar", {"ok.txt": b"x"},
                             hardlinks={"h": "../outside"}), work, "h")
    error = assert_rejected(make_tar(archives / "fifo.tar", {"ok.txt": b"x"}, fifos=("pipe",)),
                            work, "pipe")
    assert "FIFO" in str(error)


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_internal_symlinks_allowed(dirs, fmt):
    # links that stay inside the target are kept as links (the common expectation)
    archives, work = dirs
    files = {"data/a.txt": b"alpha"}
    links = {"latest.txt": "data/a.txt", "data/self.txt": "../data/a.txt"}
    if fmt == "tar":
        archive = make_tar(archives / "in.tar", files, symlinks=links,
                           hardlinks={"h.txt": "data/a.txt"})
    else:
        archive = make_zip(archives / "in.zip", files, symlinks=links)
    target = safe_extract(archive, work / "target")
    for name in links:
        assert (target / name).is_symlink() and (target / name).read_bytes() == b"alpha"
    if fmt == "tar":
        assert (target / "h.txt").read_bytes() == b"alpha"


def test_truncated_tar_gz_rejected(dirs):
    archives, work = dirs
    good = make_tar(archives / "good.tgz", {"a.bin": os.urandom(200_000)}, mode="w:gz")
    bad = archives / "bad.tgz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="bad.tgz"):
        safe_extract(bad, work / "target")
    assert list(work.iterdir()) == []


def test_truncated_tar_fails_midway_and_cleans_up(dirs):
    archives, work = dirs
    good = make_tar(archives / "good.tar", {"first.txt": b"one", "second.bin": os.urandom(50_000)})
    bad = archives / "bad.tar"
    bad.write_bytes(good.read_bytes()[:30_000])  # the headers read fine, second.bin's data ends
    with pytest.raises(BadArchiveError, match="bad.tar"):
        safe_extract(bad, work / "target")
    assert list(work.iterdir()) == []


def test_corrupt_zip_member_fails_midway_and_cleans_up(dirs):
    archives, work = dirs
    good = make_zip(archives / "good.zip", {"first.txt": b"one", "second.bin": os.urandom(50_000)})
    data = bytearray(good.read_bytes())
    start = data.index(b"second.bin") + 100  # inside the second member's compressed data
    data[start:start + 64] = bytes(64)
    bad = archives / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(BadArchiveError, match="bad.zip"):
        safe_extract(bad, work / "target")
    assert list(work.iterdir()) == []


def test_unsupported_file_rejected(dirs):
    archives, work = dirs
    not_an_archive = archives / "notes.zip"
    not_an_archive.write_text("just text, whatever the suffix says")
    with pytest.raises(ValueError, match="notes.zip.*not a supported archive"):
        safe_extract(not_an_archive, work / "target")
    assert list(work.iterdir()) == []
