"""A venv with the real ``skyplane==0.3.2``, the built wheel, and the patch applied.

Built once and cached under ``.cache/integration/<key>/`` in the repository (never
under ``/tmp/skyplane*``), keyed on everything that goes into it: the package
sources, ``pyproject.toml`` and the patch. A fresh clone (CI) builds it from scratch.
Concurrent test workers wait for one builder (a file lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATCH = REPO / "integrations" / "skyplane" / "skyplane-0.3.2.patch"
CACHE = REPO / ".cache" / "integration"
SKYPLANE = "skyplane==0.3.2"
# Skyplane 0.3.2 pins pyarrow<11, which is built against NumPy 1; without these two
# pins pip picks NumPy 2 and `import skyplane` fails before any of its code runs.
SKYPLANE_IMPORTABLE = ("numpy<2", "pandas<3")


@dataclass(frozen=True)
class SkyplaneVenv:
    root: Path
    report: dict[str, str]

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def skyplane(self) -> Path:
        return self.root / "bin" / "skyplane"


def _key() -> str:
    digest = hashlib.sha256()
    sources = sorted(
        path
        for path in (REPO / "consent").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    for path in [REPO / "pyproject.toml", PATCH, Path(__file__), *sources]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{sys.version_info[:2]}".encode())
    return digest.hexdigest()[:16]


def _run(*argv: str | Path, cwd: Path | None = None, stdin: Path | None = None) -> str:
    with open(stdin or os.devnull, "rb") as feed:
        proc = subprocess.run(
            [str(arg) for arg in argv],
            cwd=cwd,
            stdin=feed,
            capture_output=True,
            text=True,
            timeout=900,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _version(python: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    return _run(python, "-c", code).strip()


def _build(work: Path) -> None:
    # a venv is not relocatable: it is built where it lives; report.json, written
    # last, marks it complete
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", work / "dist", REPO)
    (wheel,) = (work / "dist").glob("skyplane_consent-*.whl")
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    pip = (python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    _run(*pip, SKYPLANE, *SKYPLANE_IMPORTABLE)
    typer_before = _version(python, "typer")
    _run(*pip, wheel)
    report = {
        "typer_before": typer_before,
        "typer_after": _version(python, "typer"),
        "pip_check": _run(python, "-m", "pip", "check").strip(),
        "wheel": wheel.name,
    }
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    site = Path(purelib.strip())
    _run("patch", "-p1", "--dry-run", cwd=site, stdin=PATCH)
    report["patch"] = _run("patch", "-p1", cwd=site, stdin=PATCH).strip()
    (work / "report.json").write_text(json.dumps(report, indent=2))


def skyplane_venv() -> SkyplaneVenv:
    """The cached venv for this tree, built on first use."""
    if shutil.which("patch") is None:
        raise RuntimeError("`patch` is not installed (apt-get install patch)")
    target = CACHE / _key()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report_file = target / "report.json"
        if not report_file.is_file():
            _build(target)
            for stale in CACHE.iterdir():
                # venvs of earlier trees: several hundred MB each, never used again
                if stale.is_dir() and stale != target:
                    shutil.rmtree(stale, ignore_errors=True)
    return SkyplaneVenv(target / "venv", json.loads(report_file.read_text()))
