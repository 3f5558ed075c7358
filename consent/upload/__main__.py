"""``python -m consent.upload``: the detached background sender (see :mod:`.spawn`)."""

import sys

from consent.upload.spawn import main

sys.exit(main())
