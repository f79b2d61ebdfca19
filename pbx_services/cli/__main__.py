"""`python -m pbx_services.cli`: the `pbx` command without its console script."""

import sys

from pbx_services.cli import main

sys.exit(main())
