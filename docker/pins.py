"""Print paddle_tag's pinned requirements from setup.cfg (the one place pins live), minus some names.

Used by the Docker recipe: the Paddle GPU image brings its own Paddle build, so the CPU wheel pinned
in setup.cfg must not be installed over it: ``python docker/pins.py --exclude paddlepaddle``.
"""
import argparse
import configparser
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exclude", nargs="*", default=[], help="distribution names to leave out")
    parser.add_argument("--setup-cfg", default=str(Path(__file__).resolve().parents[1] / "setup.cfg"))
    args = parser.parse_args()
    config = configparser.ConfigParser()
    config.read(args.setup_cfg)
    excluded = {name.lower() for name in args.exclude}
    for line in config["options"]["install_requires"].strip().splitlines():
        requirement = line.split("#", 1)[0].strip()
        name = requirement.split("==")[0].split(">=")[0].split("<")[0].strip().lower()
        if requirement and name not in excluded:
            print(requirement)


if __name__ == "__main__":
    main()
