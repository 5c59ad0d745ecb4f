"""`vae-mnist explore` as a script: `python scripts/explore.py --help`."""

from vae_mnist.cli import script_main


def main() -> None:
    script_main("explore")


if __name__ == "__main__":
    main()
