"""Every Lambda artifact, built by the Makefile from the hashed locks (requirements/layer.lock,
requirements/kubernetes.lock), imports its function and makes its first request's set-up.

``make build-<Function>`` installs exactly the locks' packages (``--no-deps --require-hashes``);
here the wheels are this machine's (x86_64) instead of Lambda's arm64 ones, of the same versions
and hashes, so the artifacts can be imported: a package the locks leave out that a function
needs fails here. Each function is probed as the cold-start benchmark probes it (a fresh Python
3.13, ``-S``, its path the artifact, the layer and a runtime with boto3, as Lambda orders them).

Needs PyPI (the locks' wheels) and a Python 3.13: skipped without either.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from benchmarks.cold_start import PROBE, environment, fake_eks
from benchmarks.handlers import COLD_START_PROBES
from local_stack.template import functions

REPO = Path(__file__).resolve().parents[2]
HOST_WHEELS = "--only-binary=:all: --platform manylinux2014_x86_64 --implementation cp --python-version 3.13"
# A function's probe, by its folder: the benchmark's names include variants and library floors.
PROBES = {name: COLD_START_PROBES[name] for name in COLD_START_PROBES if (REPO / "functions" / name).is_dir()}
# Functions the cold-start benchmark does not measure: their first request's set-up, the same way.
PROBES |= {"cache_service": ("functions.cache_service.handler", "m.cache_service()._store.client")}

pytestmark = pytest.mark.network


def _python313() -> str | None:
    candidates = [
        os.environ.get("LAMBDA_PYTHON", ""),
        "python3.13",
        *glob.glob(str(Path.home() / ".pyenv/versions/3.13*/bin/python3.13")),
    ]
    for candidate in filter(None, candidates):
        found = shutil.which(candidate) or candidate
        try:
            subprocess.run([found, "-c", "import pip"], check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        return found
    return None


def _online() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, str]:
    """Each function's Python path (artifact, layer, runtime), every artifact built by the Makefile."""
    python = _python313()
    if python is None or not _online():
        pytest.skip("needs PyPI and a Python 3.13")
    root = tmp_path_factory.mktemp("artifacts")
    runtime = root / "runtime"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--target", str(runtime), "boto3"], check=True, timeout=600
    )
    targets = {"SharedLayer": root / "layer", **{name: root / name for name in functions()}}
    for target, directory in targets.items():
        subprocess.run(
            [
                "make",
                "--silent",
                f"build-{target}",
                f"ARTIFACTS_DIR={directory}",
                f"PYTHON={python}",
                f"PIP_TARGET={HOST_WHEELS}",
            ],
            cwd=REPO,
            check=True,
            timeout=900,
        )
    paths = {
        name: ":".join(str(p) for p in (root / _logical_id(name), root / "layer" / "python", runtime))
        for name in PROBES
    }
    return {**paths, "__python__": python}


def _logical_id(folder: str) -> str:
    return "".join(part.capitalize() for part in folder.split("_")) + "Function"


def test_the_kubernetes_lock_serves_both_functions_that_install_it():
    requirements = {(REPO / "functions" / n / "requirements.txt").read_text() for n in ("reconcile", "mirror_status")}
    assert len(requirements) == 1  # one lock, built from reconcile's, installed for both


def test_every_function_is_probed():
    assert set(PROBES) == {path.parent.name for path in (REPO / "functions").glob("*/handler.py")}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_every_function_imports_and_sets_up_from_its_built_artifact(built, name, tmp_path):
    module, setup = PROBES[name]
    with fake_eks() as eks:
        env = {**environment(eks_endpoint=eks, scratch=tmp_path), "PYTHONPATH": built[name]}
        result = subprocess.run(
            [built["__python__"], "-S", "-c", PROBE.format(module=module, setup=setup)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-3000:]
