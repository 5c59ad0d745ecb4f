"""`vae-mnist plot` as a script: `python scripts/plot.py --help`."""

from vae_mnist.cli import script_main


def main() -> None:
    script_main("plot")


if __name__ == "__main__":
    main()
