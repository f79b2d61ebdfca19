"""What only the role meeting leaves on a host (the application servers' checks are in
molecule/shared/test_appserver.py): espeak-ng, for the announcements."""

VENV_PYTHON = "/opt/pbx/venv/bin/python"


def test_espeak_ng_installed(host):
    assert host.package("espeak-ng").is_installed


def test_the_daemons_user_speaks_an_announcement(host):
    """What a meeting worker does for its first announcement (pbx_services/meeting/sounds.py),
    as the pbx user: espeak-ng's WAV, read back as 8 kHz samples."""
    speak = ("from pbx_services.cluster.prompts import synthesize; "
             "print(len(synthesize('There are 2 participants.')))")
    spoken = host.check_output(f'runuser -u pbx -- {VENV_PYTHON} -c "{speak}"')
    assert int(spoken) > 8000  # more than a second of speech

