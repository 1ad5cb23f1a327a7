"""python3 -m postprocess COMMAND ARGS...: runs one command of the package."""
import importlib
import sys

COMMANDS = {
    "summary": "summary",
    "samples": "samples",
    "training": "training",
    "scaling": "scaling",
    "scaling-model": "scaling_model",
    "psis": "psis",
    "compare-reference": "compare_reference",
    "compare-posteriordb": "compare_posteriordb",
}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command '{argv[0]}'; " if argv and not argv[0].startswith("-") else ""
        print(f"usage: python3 -m postprocess COMMAND ARGS... ({given}commands: "
              f"{', '.join(COMMANDS)}; each takes --help)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f".{COMMANDS[argv[0]]}", __package__)
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
