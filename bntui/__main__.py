"""`python -m bntui` runs the `bntui` command."""

from bntui.cli import main

raise SystemExit(main())
