"""``python -m onebot_ref.record``: see :mod:`onebot_ref.record`."""

from . import main

raise SystemExit(main())
