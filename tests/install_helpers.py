"""What the install tests share: building a venv, the package's third-party imports, tiny NER data."""

import ast
import pathlib
import subprocess
import sys

# Imported only inside functions that name the extra to install when it is missing.
OPTIONAL_IMPORTS = {
    "matplotlib": "requirements-experiments.txt (plots)",
    "torch": "requirements-oracles.txt (reading pytorch_model.bin, the HF reference curve)",
    "transformers": "requirements-oracles.txt (the HF reference curve)",
}
NER_SENTENCES = [
    [("John", "B-PER"), ("Smith", "I-PER"), ("lives", "O"), ("in", "O"), ("Paris", "B-LOC")],
    [("Mary", "B-PER"), ("works", "O"), ("for", "O"), ("Acme", "B-ORG"), ("Corp", "I-ORG")],
    [("The", "O"), ("river", "O"), ("Jordan", "B-LOC"), ("flows", "O"), ("south", "O")],
    [("Peter", "B-PER"), ("visited", "O"), ("Rome", "B-LOC"), ("with", "O"), ("Paul", "B-PER")],
    [("Apple", "B-ORG"), ("opened", "O"), ("in", "O"), ("Berlin", "B-LOC")],
    [("David", "B-PER"), ("sang", "O"), ("in", "O"), ("Jerusalem", "B-LOC")],
]


def third_party_imports(package: pathlib.Path) -> set[str]:
    """Top-level names of the non-stdlib modules imported anywhere under `package`."""
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != package.name}


def missing_imports(python: pathlib.Path, package: pathlib.Path) -> list[str]:
    """The package's required third-party imports that `python` cannot find."""
    needed = sorted(third_party_imports(package) - set(OPTIONAL_IMPORTS))
    found = subprocess.run(
        [str(python), "-c", FIND_SPECS, *needed], capture_output=True, text=True, check=True
    )
    return found.stdout.split()


FIND_SPECS = (
    "import importlib.util, sys; "
    "print(' '.join(n for n in sys.argv[1:] if importlib.util.find_spec(n) is None))"
)


def build_venv(path: pathlib.Path, *pip_args: str) -> pathlib.Path:
    """A new venv at `path` holding `pip install *pip_args`; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pip_args], check=True)
    return python


def write_conll(path: pathlib.Path, repeats: int) -> None:
    """NER_SENTENCES `repeats` times as a CoNLL file: "word tag" lines, blank line between."""
    blocks = ["\n".join(f"{w} {t}" for w, t in s) for s in NER_SENTENCES] * repeats
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
