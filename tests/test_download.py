import functools
import http.server
import threading

import pytest
from helpers.data import KDD10

from kddad.data.download import MIRROR_ENV, fetch, sha256sum
from kddad.errors import DownloadError

SHA = "8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561"
UNREACHABLE = "http://127.0.0.1:9/kddcup.data_10_percent.gz"  # discard port: connection refused at once


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def _truncated_mirror(mirror, tmp_path, keep: float = 0.5):
    bad = tmp_path / "bad_mirror"
    bad.mkdir()
    data = (mirror / KDD10).read_bytes()
    (bad / KDD10).write_bytes(data[: int(len(data) * keep)])
    return bad


def test_mirror_copy_is_verified_and_second_fetch_is_skipped(mirror, tmp_path, caplog):
    out = tmp_path / "raw"
    path = fetch(KDD10, out, sha256=SHA, mirror=str(mirror))
    assert path == out / KDD10 and sha256sum(path) == SHA
    assert sorted(p.name for p in out.iterdir()) == [KDD10]
    mtime = path.stat().st_mtime_ns
    caplog.set_level("INFO")
    fetch(KDD10, out, sha256=SHA, mirror=str(mirror))
    assert path.stat().st_mtime_ns == mtime
    assert "nothing to fetch" in caplog.text


def test_env_var_mirror_is_used(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    assert sha256sum(fetch(KDD10, tmp_path / "raw", sha256=SHA)) == SHA


def test_checksum_mismatch_names_every_source_and_leaves_nothing(mirror, tmp_path):
    bad = _truncated_mirror(mirror, tmp_path)
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as err:
        fetch(KDD10, out, sha256=SHA, urls=[UNREACHABLE], mirror=str(bad))
    msg = str(err.value)
    assert f"mirror {bad / KDD10}: sha256 mismatch: expected {SHA}" in msg
    assert f"url {UNREACHABLE}: " in msg and "ConnectionError" in msg
    assert list(out.iterdir()) == []


def test_truncated_gzip_without_checksum_is_refused(mirror, tmp_path):
    bad = _truncated_mirror(mirror, tmp_path, keep=0.9)
    out = tmp_path / "raw"
    with pytest.raises(DownloadError, match="not a complete gzip file"):
        fetch(KDD10, out, sha256=None, path=str(bad / KDD10))
    assert list(out.iterdir()) == []


def test_a_corrupt_file_in_place_is_replaced(mirror, tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / KDD10).write_bytes(b"not the data")
    path = fetch(KDD10, out, sha256=SHA, mirror=str(mirror))
    assert sha256sum(path) == SHA


def test_a_bad_file_in_place_is_removed_when_no_source_works(mirror, tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / KDD10).write_bytes(b"half a download")
    with pytest.raises(DownloadError):
        fetch(KDD10, out, sha256=SHA, urls=[UNREACHABLE])
    assert list(out.iterdir()) == [] and not list(tmp_path.glob(".*part"))


def test_no_source_at_all_says_what_to_set(tmp_path):
    with pytest.raises(DownloadError, match="no source configured"):
        fetch(KDD10, tmp_path / "raw", sha256=SHA)


@pytest.fixture
def http_server(mirror):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_download_falls_through_failing_sources(http_server, tmp_path):
    missing_mirror = tmp_path / "empty"
    missing_mirror.mkdir()
    path = fetch(
        KDD10,
        tmp_path / "raw",
        sha256=SHA,
        mirror=str(missing_mirror),
        urls=[UNREACHABLE, f"{http_server}/no-such-file.gz", f"{http_server}/{KDD10}"],
    )
    assert sha256sum(path) == SHA
    assert sorted(p.name for p in path.parent.iterdir()) == [KDD10]


def test_http_404_is_reported(http_server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        fetch(KDD10, tmp_path / "raw", sha256=SHA, urls=[f"{http_server}/no-such-file.gz"])


def test_a_copy_whose_bytes_differ_passes_on_its_records_and_a_changed_record_fails(mirror, tmp_path, caplog):
    """NSL-KDD's KDDTest+ circulates with 0.00 and with 0.0: dataset=nslkdd pins the records."""
    import re

    from kddad.data.read import records_sha256

    copy = tmp_path / "mirror"
    copy.mkdir()
    text = (mirror / "KDDTest+.txt").read_text()
    (copy / "KDDTest+.txt").write_text(re.sub(r"(?<=,)(\d\.\d)(?=,)", r"\g<1>0", text))
    want = records_sha256(mirror / "KDDTest+.txt")
    caplog.set_level("INFO")
    got = fetch(
        "KDDTest+.txt",
        tmp_path / "raw",
        sha256=sha256sum(mirror / "KDDTest+.txt"),
        records_sha256=want,
        mirror=str(copy),
    )
    assert got.read_text() != text and "records sha256" in caplog.text and "bytes differ" in caplog.text
    # one value changed: neither checksum holds, both are named, nothing is left
    first, rest = text.split("\n", 1)
    fields = first.split(",")
    fields[4] = str(int(fields[4]) + 1)  # src_bytes of the first record
    (copy / "KDDTest+.txt").write_text(",".join(fields) + "\n" + rest)
    with pytest.raises(DownloadError) as err:
        fetch("KDDTest+.txt", tmp_path / "raw2", sha256=None, records_sha256=want, mirror=str(copy))
    assert "records sha256 mismatch" in str(err.value) and str(copy / "KDDTest+.txt") in str(err.value)
    assert not (tmp_path / "raw2").exists() or not any((tmp_path / "raw2").iterdir())


def test_a_gzipped_copy_with_other_bytes_passes_on_its_records(mirror, tmp_path):
    """The records of a .gz are read as gzip even under a download's temporary name."""
    import gzip

    from kddad.data.read import records_sha256

    copy = tmp_path / "mirror"
    copy.mkdir()
    lines = (mirror / "KDDTest+.txt").read_text().splitlines(keepends=True)[:500]
    (tmp_path / "slice.txt").write_text("".join(lines))
    with gzip.open(copy / "slice.txt.gz", "wt", compresslevel=1) as f:
        f.write("".join(lines))
    want = records_sha256(tmp_path / "slice.txt")
    got = fetch("slice.txt.gz", tmp_path / "raw", sha256="0" * 64, records_sha256=want, mirror=str(copy))
    assert records_sha256(got) == want
