"""`python -m provider`: the same as the `secrets-store-csi-provider` console script."""

from provider.cli import main

raise SystemExit(main())
