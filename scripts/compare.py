"""`vae-mnist compare` as a script: `python scripts/compare.py --help`."""

from vae_mnist.cli import script_main


def main() -> None:
    script_main("compare")


if __name__ == "__main__":
    main()
