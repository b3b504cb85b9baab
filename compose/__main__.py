"""`python -m compose MANIFEST OUTPUT` (see compose.composer.main)."""

import sys

from compose.composer import main

sys.exit(main())
