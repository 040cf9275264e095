"""``python -m sundial``: the same as the ``sundial`` command."""

import sys

from sundial.cli.main import main

sys.exit(main())
