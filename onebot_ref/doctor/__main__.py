"""``python -m onebot_ref.doctor``: see :mod:`onebot_ref.doctor`."""

from . import main

raise SystemExit(main())
