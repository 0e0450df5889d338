"""``python -m partcli`` (used by ``torchrun -m partcli train ...``)."""
from partcli.cli import main

if __name__ == "__main__":  # guard: worker processes (forkserver/spawn) re-import this module
    main()
