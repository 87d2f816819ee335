"""SftpDestination against a real OpenSSH sshd: bytes, atomic publish, failures mid-upload, skipping."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from shared.destinations.sftp import destination as sftp_module
from shared.destinations.sftp.destination import SftpDestination
from shared.destinations.sftp.pool import limiter_for
from shared.errors import PermanentError, RejectedInput, TransientError
from shared.secrets import Secret
from tests.sftp.conftest import PartnerFactory, make_partner
from tests.sftp.sshd_server import Sshd
from tests.sftp.tcp_proxy import CuttingProxy
from tests.threads import together

MB = 1024 * 1024


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def put(dest: SftpDestination, path: str, data: bytes, **kw: str):
    return dest.put(path, io.BytesIO(data), len(data), **kw)


def test_file_lands_with_its_name_and_bytes_and_no_partial(partner: PartnerFactory, workdir: Path) -> None:
    data = os.urandom(3 * MB + 5)
    with SftpDestination("acme", partner()) as dest:
        result = put(dest, "sales/orders/20250108/r1/orders_20250108-000000000000.parquet", data)
    assert result.status == "uploaded" and result.sha1 == sha1(data) and result.size == len(data)
    landed = workdir / "sales/orders/20250108/r1/orders_20250108-000000000000.parquet"
    assert landed.read_bytes() == data
    assert sorted(p.name for p in landed.parent.iterdir()) == [landed.name]


def test_same_file_again_is_unchanged_and_not_rewritten(partner: PartnerFactory, workdir: Path) -> None:
    data = os.urandom(MB)
    with SftpDestination("acme", partner()) as dest:
        put(dest, "x/file.bin", data)
        before = os.stat(workdir / "x/file.bin")
        assert put(dest, "x/file.bin", data).status == "unchanged"
        assert put(dest, "x/file.bin", data, sha1=sha1(data)).status == "unchanged"
    # a new process (fresh ledger) proves it by downloading, and still does not rewrite
    with SftpDestination("acme", partner()) as fresh:
        assert put(fresh, "x/file.bin", data, sha1=sha1(data)).status == "unchanged"
    after = os.stat(workdir / "x/file.bin")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_same_size_other_bytes_replace_the_file(partner: PartnerFactory, workdir: Path) -> None:
    with SftpDestination("acme", partner()) as fresh:
        put(fresh, "f.txt", b"aaaa")
    (workdir / "f.txt").write_bytes(b"bbbb")  # someone else rewrote it: same size, other bytes
    with SftpDestination("acme", partner()) as dest:
        assert put(dest, "f.txt", b"aaaa").status == "new_version"
    assert (workdir / "f.txt").read_bytes() == b"aaaa"


def test_connection_cut_mid_upload_leaves_only_the_partial_and_a_retry_completes(sshd: Sshd, workdir: Path) -> None:
    old, new = os.urandom(2 * MB), os.urandom(24 * MB)
    (workdir / "d").mkdir()
    (workdir / "d/file.bin").write_bytes(old)
    os.chown(workdir / "d", sshd.user.uid, sshd.user.gid)
    os.chown(workdir / "d/file.bin", sshd.user.uid, sshd.user.gid)
    proxy = CuttingProxy(sshd.port, cut_after_bytes=6 * MB)
    try:
        known = f"[127.0.0.1]:{proxy.port} {' '.join(sshd.host_public_key.split()[:2])}\n"
        partner = make_partner(sshd, workdir, port=proxy.port, known_hosts=Secret(known))
        with SftpDestination("cut", partner) as dest, pytest.raises(TransientError):
            put(dest, "d/file.bin", new)
        assert proxy.cuts >= 1
        assert (workdir / "d/file.bin").read_bytes() == old  # the published file is untouched
        leftovers = sorted(p.name for p in (workdir / "d").iterdir())
        assert leftovers in (["file.bin"], ["file.bin", "file.bin.partial"])
        proxy.cut_after_bytes = None
        with SftpDestination("cut", partner) as dest:
            assert put(dest, "d/file.bin", new).status == "new_version"
        assert (workdir / "d/file.bin").read_bytes() == new
        assert sorted(p.name for p in (workdir / "d").iterdir()) == ["file.bin"]
    finally:
        proxy.close()


def test_a_partial_still_growing_is_left_to_its_writer(partner: PartnerFactory, workdir: Path) -> None:
    partial = workdir / "busy.bin.partial"
    partial.write_bytes(b"")
    stop = threading.Event()

    def other_writer() -> None:
        with partial.open("ab") as out:
            while not stop.wait(0.1):
                out.write(b"x" * 1000)
                out.flush()

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        with SftpDestination("acme", partner()) as dest, pytest.raises(TransientError, match="another delivery"):
            put(dest, "busy.bin", b"mine")
    finally:
        stop.set()
        thread.join()
    assert not (workdir / "busy.bin").exists()


def test_a_name_ending_with_the_partial_suffix_is_refused(partner: PartnerFactory, workdir: Path) -> None:
    """NAME.partial is where NAME is written: a delivered file of that name would be taken over
    as a leftover (deleted) by the next delivery of NAME. Refused as bad input, not retried."""
    with SftpDestination("acme", partner()) as dest:
        refusal = r"'in/data\.csv\.partial'.*'\.partial'.*destinations\.sftp\.acme\.partial_suffix"
        with pytest.raises(RejectedInput, match=refusal):
            put(dest, "in/data.csv.partial", b"precious")
        assert put(dest, "in/data.csv", b"id\n1\n").status == "uploaded"
    assert sorted(p.name for p in (workdir / "in").iterdir()) == ["data.csv"]
    with SftpDestination("acme", partner(partial_suffix=".tmp")) as dest:
        with pytest.raises(RejectedInput, match=r"'x\.tmp'.*'\.tmp'"):
            put(dest, "x.tmp", b"x")
        assert put(dest, "in/data.csv.partial", b"precious").status == "uploaded"  # no partial name here
    assert not (workdir / "x.tmp").exists()


def test_permission_denied_on_the_directory_names_the_path(partner: PartnerFactory, workdir: Path) -> None:
    locked = workdir / "locked"
    locked.mkdir(mode=0o755)  # owned by root: the login user cannot write here
    with SftpDestination("acme", partner()) as dest:
        with pytest.raises(PermanentError, match=r"permission denied.*locked"):
            put(dest, "locked/file.bin", b"data")
        with pytest.raises(PermanentError, match=r"locked/sub"):
            put(dest, "locked/sub/file.bin", b"data")


def test_missing_partner_directory_is_created(sshd: Sshd, workdir: Path) -> None:
    with SftpDestination("acme", make_partner(sshd, workdir / "new/partner/dir")) as dest:
        put(dest, "a.txt", b"hello")
    assert (workdir / "new/partner/dir/a.txt").read_bytes() == b"hello"


def test_parallel_connections_write_one_file(
    partner: PartnerFactory, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sftp_module, "PARALLEL_MIN_BYTES", MB)
    data = os.urandom(12 * MB + 3)
    config = partner(connections_per_file=3, max_sessions=3)
    with SftpDestination("parallel", config) as dest:
        assert put(dest, "p/big.bin", data).sha1 == sha1(data)
        assert limiter_for("parallel", config).used == 3  # three sessions were opened (now idle)
    assert (workdir / "p/big.bin").read_bytes() == data


def test_max_sessions_is_honoured(private_sshd: Sshd, workdir: Path) -> None:
    config = make_partner(private_sshd, workdir, max_sessions=1)
    with SftpDestination("one-session", config) as dest:
        together(*[lambda i=i: put(dest, f"s/{i}.bin", os.urandom(MB)) for i in range(4)])
    assert sorted(p.name for p in (workdir / "s").iterdir()) == [f"{i}.bin" for i in range(4)]
    assert private_sshd.log_text().count("Accepted publickey") == 1


def test_read_back_and_listing(partner: PartnerFactory) -> None:
    data = os.urandom(2 * MB + 1)
    with SftpDestination("acme", partner()) as dest:
        put(dest, "r/a.bin", data)
        put(dest, "r/sub/b.txt", b"b")
        with dest.open("r/a.bin") as stream:
            assert stream.read() == data
        assert [(f.path, f.size, f.sha1) for f in dest.list("r")] == [
            ("r/a.bin", len(data), None),
            ("r/sub/b.txt", 1, None),
        ]
        assert dest.abilities.hashes == frozenset()


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_sha1sum_hashing_over_exec(shell_sshd: Sshd, workdir: Path, client: str) -> None:
    """paramiko: an exec channel; openssh: a command sharing the ssh process's connection."""
    data = os.urandom(MB)
    with SftpDestination("hashing", make_partner(shell_sshd, workdir, hashing="sha1sum", ssh_client=client)) as dest:
        assert dest.abilities.hashes == frozenset({"sha1"})
        put(dest, "h/it's a file.bin", data)
        assert dest.stat("h/it's a file.bin").sha1 == sha1(data)  # type: ignore[union-attr]
        assert [f.sha1 for f in dest.list("h")] == [sha1(data)]
        before = os.stat(workdir / "h/it's a file.bin")
    with SftpDestination("hashing", make_partner(shell_sshd, workdir, hashing="sha1sum", ssh_client=client)) as fresh:
        assert put(fresh, "h/it's a file.bin", data, sha1=sha1(data)).status == "unchanged"  # server hash, no download
    assert os.stat(workdir / "h/it's a file.bin").st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_sha1sum_hashes_names_with_characters_python_ends_lines_at(
    shell_sshd: Sshd, workdir: Path, client: str
) -> None:
    """sha1sum ends its lines with '\\n' only; U+2028, U+0085, form feeds, \\x1c-\\x1e in a name
    are not line ends, and one such name must not break a whole folder's listing."""
    names = [
        "report\u2028q1.csv",
        "sales\x0cnotes.csv",
        "menu \x85.csv",
        "a\x0bb\x1cc\x1dd\x1ee\u2029.csv",
        "plain.csv",
    ]
    data = {name: os.urandom(1000) for name in names}
    with SftpDestination("hashing", make_partner(shell_sshd, workdir, hashing="sha1sum", ssh_client=client)) as dest:
        for name, body in data.items():
            assert put(dest, f"odd/{name}", body).status == "uploaded"
            assert dest.stat(f"odd/{name}").sha1 == sha1(body)  # type: ignore[union-attr]
        listed = {f.path: f.sha1 for f in dest.list("odd")}
    assert listed == {f"odd/{name}": sha1(body) for name, body in data.items()}


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_sha1sum_never_runs_past_the_invocations_end(shell_sshd: Sshd, workdir: Path, client: str) -> None:
    """The server's sha1sum may take what a 20 MB/s server needs (a minute, plus 50 s a GB), but
    not past the invocation's end: there the platform would cut the function off with nothing
    reported. Here the hashed path is a FIFO nobody writes, so sha1sum waits until stopped; it
    stops at the invocation's end (3 s) with an error that says so. With no time left, it does
    not start."""
    import time

    from shared import retry
    from shared.destinations.sftp.hashing import remote_sha1

    (workdir / "h").mkdir()
    fifo = workdir / "h" / "never-written"
    os.mkfifo(fifo)
    with SftpDestination("hashing", make_partner(shell_sshd, workdir, hashing="sha1sum", ssh_client=client)) as dest:
        path = dest.remote_path("h/never-written")
        with dest.pool.session() as session:
            with retry.waits_end_by(time.monotonic()), pytest.raises(TransientError, match="in the 0 s left"):
                remote_sha1(session, "sha1sum", [path], 10**9)
        try:
            started = time.monotonic()
            with dest.pool.session() as session, retry.waits_end_by(started + 3):
                with pytest.raises(TransientError, match=r"1,000,000,000 bytes, did not finish in the [1-3] s left"):
                    remote_sha1(session, "sha1sum", [path], 10**9)  # uncapped: 110 s
            assert time.monotonic() - started < 30
        finally:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # EOF: the server's sha1sum ends


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_sha1sum_on_an_sftp_only_account_says_which_switch_to_change(partner: PartnerFactory, client: str) -> None:
    dest = SftpDestination("acme", partner(hashing="sha1sum", ssh_client=client))
    with dest, pytest.raises(PermanentError, match="hashing to 'check-file' or 'none'"):
        put(dest, "x.bin", b"data")


def test_cipher_is_configurable(partner: PartnerFactory) -> None:
    from shared.destinations.sftp.session import open_session
    from shared.errors import ConfigError

    session = open_session("acme", partner(ciphers=("aes256-ctr",)))
    try:
        assert session.cipher == "aes256-ctr"
    finally:
        session.close()
    default = open_session("acme", partner())
    try:
        assert default.cipher == "aes128-gcm@openssh.com"
    finally:
        default.close()
    with pytest.raises(ConfigError, match="ciphers"):
        open_session("acme", partner(ciphers=("rot13",)))
