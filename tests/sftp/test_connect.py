"""Host key verification and authentication against a real sshd: refusals are clear and permanent."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from shared.destinations.sftp.hostkeys import entries_for, parse_known_hosts
from shared.destinations.sftp.session import open_session
from shared.errors import ConfigError, PermanentError, TransientError
from shared.secrets import Secret
from tests.sftp.conftest import PartnerFactory, make_partner
from tests.sftp.sshd_server import PASSWORD, SftpUser, Sshd, fingerprint, keygen


def connects(partner) -> str:  # type: ignore[no-untyped-def]
    session = open_session("acme", partner)
    try:
        return session.host_key
    finally:
        session.close()


def other_host_key(tmp_path: Path) -> str:
    pub = keygen(tmp_path / "impostor").with_suffix(".pub").read_text().split()
    return f"{pub[0]} {pub[1]}"


def test_known_hosts_entry_is_accepted(sshd: Sshd, partner: PartnerFactory) -> None:
    assert connects(partner()) == f"ssh-ed25519 {sshd.host_fingerprint}"


def test_changed_host_key_is_refused_showing_the_offered_fingerprint(
    sshd: Sshd, partner: PartnerFactory, tmp_path: Path
) -> None:
    stale = f"[127.0.0.1]:{sshd.port} {other_host_key(tmp_path)}\n"
    with pytest.raises(PermanentError, match="HOST KEY MISMATCH") as refused:
        connects(partner(known_hosts=Secret(stale)))
    assert sshd.host_fingerprint in str(refused.value)
    assert not isinstance(refused.value, TransientError)


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_a_host_key_of_another_type_is_a_mismatch_showing_the_offered_key(
    sftp_user: SftpUser, workdir: Path, tmp_path: Path, client: str
) -> None:
    """known_hosts pins an Ed25519 key, the server now has only an RSA one: refused for good, as
    OpenSSH refuses it, not retried as a lost connection."""
    server = Sshd(sftp_user, host_key_type="rsa").start()
    try:
        stale = f"[127.0.0.1]:{server.port} {other_host_key(tmp_path)}\n"
        with pytest.raises(PermanentError, match="HOST KEY MISMATCH") as refused:
            connects(make_partner(server, workdir, known_hosts=Secret(stale), ssh_client=client))
        assert f"offered ssh-rsa {server.host_fingerprint}, expected ssh-ed25519 SHA256:" in str(refused.value)
        assert "Accepted" not in server.log_text()
    finally:
        server.cleanup()


def test_refused_before_any_credential_is_sent(private_sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    stale = f"[127.0.0.1]:{private_sshd.port} {other_host_key(tmp_path)}\n"
    with pytest.raises(PermanentError, match=re.escape(private_sshd.host_fingerprint)):
        connects(make_partner(private_sshd, workdir, known_hosts=Secret(stale), password=Secret(PASSWORD)))
    log = private_sshd.log_text()
    assert "Accepted" not in log and "Failed" not in log and "Connection" in log


def test_unknown_host_is_refused_with_the_line_to_add(sshd: Sshd, partner: PartnerFactory) -> None:
    elsewhere = sshd.known_hosts.replace(f":{sshd.port}]", ":1]").replace(f"]:{sshd.port}", "]:1")
    with pytest.raises(PermanentError, match="is not in") as refused:
        connects(partner(known_hosts=Secret(elsewhere)))
    message = str(refused.value)
    assert sshd.host_fingerprint in message
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in message


def test_hashed_known_hosts_entries_work(sshd: Sshd, partner: PartnerFactory, tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts)
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    hashed = path.read_text()
    assert hashed.startswith("|1|")
    assert connects(partner(known_hosts=Secret(f"file:{path}")))


def test_revoked_key_is_refused(sshd: Sshd, partner: PartnerFactory) -> None:
    revoked = "@revoked " + sshd.known_hosts
    with pytest.raises(PermanentError, match="REVOKED"):
        connects(partner(known_hosts=Secret(revoked + sshd.known_hosts)))


def test_pinned_fingerprint(sshd: Sshd, partner: PartnerFactory, tmp_path: Path) -> None:
    assert connects(partner(known_hosts=None, host_key_fingerprint=sshd.host_fingerprint))
    wrong = fingerprint(keygen(tmp_path / "other").with_suffix(".pub"))
    with pytest.raises(PermanentError, match=re.escape(sshd.host_fingerprint)):
        connects(partner(known_hosts=None, host_key_fingerprint=wrong))


def test_pinned_fingerprint_of_a_second_host_key_is_found(sftp_user, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    """A server with an Ed25519 and an RSA key; the pin names the RSA one."""
    server = Sshd(sftp_user)
    try:
        rsa = keygen(server.state / "host_rsa", "rsa", bits=2048)
        server.extra_config = f"HostKey {rsa}\n"
        server.start()
        pin = fingerprint(rsa.with_suffix(".pub"))
        assert connects(make_partner(server, workdir, known_hosts=None, host_key_fingerprint=pin)).startswith(
            "ssh-rsa "
        )
    finally:
        server.cleanup()


def test_password_auth_and_a_wrong_password(shell_sshd: Sshd, workdir: Path) -> None:
    good = make_partner(shell_sshd, workdir, private_key=None, password=Secret(PASSWORD))
    assert connects(good)
    bad = make_partner(shell_sshd, workdir, private_key=None, password=Secret("not-the-password"))
    with pytest.raises(PermanentError, match=r"authentication as 'offsite-sftptest'.*password refused"):
        connects(bad)


@pytest.mark.parametrize("kind", ["rsa", "ecdsa", "ed25519"])
def test_key_types_with_and_without_passphrase(kind: str, private_sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    plain = keygen(tmp_path / f"plain_{kind}", kind)
    locked = keygen(tmp_path / f"locked_{kind}", kind, passphrase="s3cret phrase")
    for key in (plain, locked):
        private_sshd.authorize(key.with_suffix(".pub"))
    assert connects(make_partner(private_sshd, workdir, private_key=Secret(f"file:{plain}")))
    assert connects(
        make_partner(
            private_sshd, workdir, private_key=Secret(f"file:{locked}"), private_key_passphrase=Secret("s3cret phrase")
        )
    )
    with pytest.raises(ConfigError, match="private_key_passphrase"):
        connects(make_partner(private_sshd, workdir, private_key=Secret(f"file:{locked}")))
    with pytest.raises(ConfigError, match="private_key"):
        connects(
            make_partner(
                private_sshd, workdir, private_key=Secret(f"file:{locked}"), private_key_passphrase=Secret("wrong")
            )
        )


def test_unreadable_or_unusable_keys_are_clear_config_errors(partner: PartnerFactory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read secret file '/nonexistent/key'"):
        connects(partner(private_key=Secret("file:/nonexistent/key", "destinations.sftp.acme.private_key")))
    garbage = tmp_path / "garbage"
    garbage.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not a readable RSA, ECDSA or Ed25519 private key"):
        connects(partner(private_key=Secret(f"file:{garbage}")))
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(PermanentError, match="ssh-ed25519 key refused"):
        connects(partner(private_key=Secret(f"file:{stranger}")))


def test_connection_refused_is_transient(sshd: Sshd, partner: PartnerFactory) -> None:
    from devstack.ports import free_port

    with pytest.raises(TransientError, match="connecting to 127.0.0.1"):
        connects(partner(port=free_port()))


def test_known_hosts_patterns() -> None:
    lines = [
        "# comment",
        "*.example.com,!bad.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",
        "[10.0.0.?]:2222 ssh-rsa AAAAB3NzaC1yc2E=",
        "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",
    ]
    text = "\n".join(lines)
    entries = parse_known_hosts(text)
    assert len(entries) == 2
    assert entries_for(entries, "sftp.example.com", 22) and not entries_for(entries, "bad.example.com", 22)
    assert entries_for(entries, "10.0.0.7", 2222) and not entries_for(entries, "10.0.0.7", 22)
    with pytest.raises(ConfigError, match="line 1"):
        parse_known_hosts("justonefield")
