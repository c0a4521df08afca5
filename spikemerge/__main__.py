"""`python -m spikemerge`: the same command as the `spikemerge` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
