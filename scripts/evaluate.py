"""`vae-mnist evaluate` as a script: `python scripts/evaluate.py --help`."""

from vae_mnist.cli import script_main


def main() -> None:
    script_main("evaluate")


if __name__ == "__main__":
    main()
