"""``python -m sundial``: the same as the ``sundial`` command."""

import sys

from sundial.cli import main

sys.exit(main())
