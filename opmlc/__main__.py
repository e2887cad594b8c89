"""``python -m opmlc`` is the ``opmlc`` command."""

from opmlc.cli import main

raise SystemExit(main())
