"""``python -m analyzer`` is the ``handshake`` command."""

import sys

from .cli import main

sys.exit(main())
