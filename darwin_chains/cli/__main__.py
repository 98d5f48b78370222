"""`python -m darwin_chains.cli`: the same as the `darwin-chains` command."""
from . import main

raise SystemExit(main())
