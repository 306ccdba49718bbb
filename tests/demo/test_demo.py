"""`canary demo`: the README's main command, end to end on loopback."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

from click.testing import CliRunner

from canary.cli.main import cli


def test_demo_shows_the_whole_loop(tmp_path):
    folder = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--dir", str(folder)], catch_exceptions=False)
    out = result.stdout
    assert result.exit_code == 0, out
    assert "12 canaries in it name the source: dpi-demo" in out
    assert re.search(r"resolves \S+\.rdv-portail\.fr \(DNS over UDP\): NOERROR, authoritative, A 127\.0\.0\.1", out)
    assert re.search(r"opens the portal link https://mon-espace\.rdv-portail\.fr/acces/\w+: HTTP 200", out)
    assert "with the leaked password: HTTP 200" in out
    assert re.search(r"emails \S+@(courriel-sante|messagerie-mel)\.fr .*: accepted \(250\)", out)
    assert "posts a signed Twilio webhook: webhook answered HTTP 200" in out
    assert "the security team received 8 alert emails:" in out
    assert re.search(r"stolen night-nurse account « ide\.nuit », pages through 27 patient records .*"
                     r"TCP syslog \(port \d+\): 27 audit messages sent", out)
    subjects = re.findall(r"^   - (\[CANARY\] .*)$", out, re.MULTILINE)
    assert len(subjects) == 8 and all("« dpi-demo » (Clinique de démonstration)" in s for s in subjects)
    uses = [s for s in subjects if not s.startswith("[CANARY] Accès")]
    assert sorted(s.rsplit(", ", 1)[1] for s in uses) == \
        ["DNS", "SMS", "connexion au portail", "email", "lien web"]
    access = [s for s in subjects if s.startswith("[CANARY] Accès")]
    assert len(access) == 3 and all("compte « ide.nuit »" in s for s in access)
    assert sum(s.startswith("[CANARY] Accès en masse") for s in access) == 1  # the third canary: the burst
    assert sum("Identifiants utilisés" in s for s in subjects) == 1  # the portal login
    # The verify/tamper/retire steps still run after the attack.
    assert re.search(r"verify reports #\d+ missing, #\d+ altered", out)
    assert "byte-for-byte as before planting" in out

    alerts = sorted((folder / "alerts").glob("*.eml"))
    assert len(alerts) == 8
    message = message_from_bytes(alerts[0].read_bytes(), policy=policy.default)
    assert message["To"] == "rssi@clinique-demo.example" and "dpi-demo" in str(message["Subject"])
    assert len(list((folder / "smtp-evidence").glob("*.eml"))) == 1  # the phishing mail, kept
    assert (folder / "listener.log").read_text().count('"event": "ready"') == 1


def test_demo_without_dir_keeps_a_new_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    from canary.demo import run as demo

    seen = []
    monkeypatch.setattr(demo, "_run", lambda workdir, echo: seen.append(workdir) or echo("ran"))
    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0
    # kept, so the alert emails it printed can be opened; and said so
    assert seen and seen[0].is_dir() and seen[0].parent == tmp_path
    assert result.stdout == f"ran\neverything is in {seen[0]} (remove it with: rm -r {seen[0]})\n"


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "dpi-demo.db").write_text("")
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == f"canary: error: {tmp_path} is not empty: give a new or empty folder to --dir\n"
