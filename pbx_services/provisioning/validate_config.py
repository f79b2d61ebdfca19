"""Check a role's YAML config the way the daemons read it, without starting anything.

    python -m pbx_services.provisioning.validate_config FILE

Exit 0 when FILE is a valid configuration, 1 with the daemons' own one-line message
(`config error: sip.port: ...`) when it is not. The Ansible roles use it as the
`validate:` of every config they render, so a bad value never reaches a host's /etc/pbx.
The environment is ignored: the file alone must be valid.
"""

import sys
from pathlib import Path

from pbx_services.cluster.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pbx_services.provisioning.validate_config FILE", file=sys.stderr)
        return 2
    try:
        load_config(Path(args[0]), env={})
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
