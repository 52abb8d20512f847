"""`python -m natural_thoughts.cli`: the same command as `natural-thoughts`."""

from . import app

if __name__ == "__main__":
    app()
