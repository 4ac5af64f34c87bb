"""``python -m connscale`` is the ``connscale`` command."""

from connscale.cli import main

raise SystemExit(main())
