"""`vae-mnist presets` as a script: `python scripts/presets.py --help`."""

from vae_mnist.cli import script_main


def main() -> None:
    script_main("presets")


if __name__ == "__main__":
    main()
