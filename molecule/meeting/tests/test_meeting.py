"""What only the role meeting leaves on a host (the application servers' checks are in
molecule/shared/test_appserver.py): espeak-ng, for the announcements."""

VENV_PYTHON = "/opt/pbx/venv/bin/python"


def test_espeak_ng_installed(host):
    assert host.package("espeak-ng").is_installed


def test_the_daemons_user_speaks_an_announcement(host):
    """What a meeting worker does for its first announcement (pbx_services/meeting/sounds.py),
    as the pbx user: espeak-ng's WAV, read back as 8 kHz samples. In a scratch HOME and TMPDIR:
    espeak-ng's audio library writes ~/.config/pulse (in the daemon's sandbox, where its home
    /var/lib/pbx is read-only, it cannot, and speaks all the same)."""
    speak = ("from pbx_services.cluster.prompts import synthesize; "
             "print(len(synthesize('There are 2 participants.')))")
    scratch = host.check_output("mktemp -d")
    try:
        host.check_output(f"chown pbx: {scratch}")
        spoken = host.check_output(f"runuser -u pbx -- env HOME={scratch} TMPDIR={scratch} "
                                   f'{VENV_PYTHON} -c "{speak}"')
    finally:
        host.run(f"rm -rf {scratch}")
    assert int(spoken) > 8000  # more than a second of speech
