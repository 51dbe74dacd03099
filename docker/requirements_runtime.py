"""Print the project's runtime requirements ([project].dependencies of pyproject.toml), one a line.

The image installs exactly these, constrained by requirements.lock, so the test extras (browser
driver, hypothesis, ...) stay out of it:

    python docker/requirements_runtime.py > /tmp/requirements.txt
    pip install -c requirements.lock -r /tmp/requirements.txt
"""

import sys
import tomllib
from pathlib import Path


def requirements_runtime(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def main() -> None:
    pyproject = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("pyproject.toml")
    print("\n".join(requirements_runtime(pyproject)))


if __name__ == "__main__":
    main()
