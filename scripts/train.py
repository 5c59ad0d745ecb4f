"""`vae-mnist train` as a script: `python scripts/train.py --help`."""

from vae_mnist.cli import script_main


def main() -> None:
    script_main("train")


if __name__ == "__main__":
    main()
