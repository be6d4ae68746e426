"""The Lambda deployment, laid out on this machine as the cold-start benchmark measures it.

A Lambda's Python path is the function's artifact (``/var/task``), then its layers
(``/opt/python``), then the runtime's own packages (``/var/runtime``: boto3, botocore,
s3transfer, urllib3, jmespath, dateutil, six). This module builds the same three directories from
the distributions installed in the development environment, so an import is measured against
what is shipped and nothing else:

- **runtime**: boto3 and what it requires (``RUNTIME_DISTRIBUTIONS``);
- **layer** (``python/``): the packages of ``requirements/layer.lock`` (what the Makefile installs;
  code without the lock: ``shared/requirements.txt`` and what it requires), plus ``runplane``;
- **one artifact per function**: ``functions/__init__.py`` and the function's folder, and, for the
  functions with a ``requirements.txt`` (reconcile, mirror_status), the packages of
  ``requirements/kubernetes.lock`` (without it: the requirements and what they require) trimmed
  exactly as the Makefile's ``install_kubernetes`` trims them (the lists are read from the Makefile).

Everything is precompiled as the Makefile ships it (``compileall --invalidation-mode
unchecked-hash``). The probe runs with ``python -S``: the development environment's
site-packages, which hold test-only packages Lambda does not have (pyOpenSSL, cryptography,
moto, ...), are not on the path. botocore imports ``urllib3.contrib.pyopenssl`` whenever pyOpenSSL
is importable (~50 ms with cryptography), so measuring in the development environment charges the
functions for a package they never ship.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
# Lambda's Python runtimes ship boto3 (and with it botocore, s3transfer, urllib3, jmespath,
# python-dateutil, six) in /var/runtime; the layer does not install it (shared/requirements.txt).
RUNTIME_DISTRIBUTIONS = ("boto3",)


def requirement_names(path: Path) -> list[str]:
    """The distribution names of a requirements file (comments and pins dropped)."""
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(Requirement(line).name)
    return names


def lock_names(path: Path) -> list[str]:
    """The distribution names a hashed lock pins (``name==version \\`` lines)."""
    return [line.split("==", 1)[0] for line in path.read_text().splitlines() if re.match(r"[A-Za-z0-9]", line)]


def _shipped(lock: Path, requirements: Path, *, exclude: Iterable[str] = ()) -> list[importlib.metadata.Distribution]:
    """What the Makefile installs: the lock's packages exactly, or, for code without a lock, the
    requirements and what they require."""
    if lock.exists():
        return [importlib.metadata.distribution(name) for name in lock_names(lock)]
    return closure(requirement_names(requirements), exclude=exclude)


def closure(roots: Iterable[str], *, exclude: Iterable[str] = ()) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``roots`` need (their requirements whose markers hold here,
    extras not taken), minus ``exclude`` and what only they need."""
    excluded = {canonicalize_name(name) for name in exclude}
    seen: dict[str, importlib.metadata.Distribution] = {}
    pending = [canonicalize_name(name) for name in roots]
    while pending:
        name = pending.pop()
        if name in seen or name in excluded:
            continue
        distribution = importlib.metadata.distribution(name)
        seen[name] = distribution
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return list(seen.values())


def copy_distributions(distributions: Iterable[importlib.metadata.Distribution], target: Path) -> None:
    """Each distribution's installed files (its RECORD), as ``pip install --target`` lays them out."""
    for distribution in distributions:
        root = Path(str(distribution.locate_file("")))
        for file in distribution.files or ():
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue  # console scripts outside site-packages; bytecode is compiled below
            source = root / file
            if source.is_file():
                destination = target / file
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


def makefile_list(name: str, *, source: Path = REPO) -> list[str]:
    """A space-separated variable of the Makefile (continuation lines joined; none if undefined,
    as in an older Makefile)."""
    text = (source / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"(?m)^{name} = (.*)$", text)
    return match.group(1).split() if match else []


def trim_kubernetes(artifact: Path, *, source: Path = REPO) -> None:
    """The Makefile's ``install_kubernetes`` trim, applied to an artifact directory."""
    for relative in makefile_list("KUBERNETES_UNUSED", source=source):
        shutil.rmtree(artifact / relative, ignore_errors=True)
    for distribution in makefile_list("KUBERNETES_UNUSED_DISTS", source=source):
        for info in artifact.glob(f"{distribution}-*.dist-info"):
            shutil.rmtree(info)
    init = artifact / "kubernetes" / "__init__.py"
    init.write_text(re.sub(r"(?m)^from \. import .*\n", "", init.read_text()))
    for relative in makefile_list("KUBERNETES_EMPTIED_INITS", source=source):
        (artifact / relative).write_text("")
    for module in (artifact / "kubernetes" / "client" / "api").glob("*.py"):
        if module.name not in ("__init__.py", "custom_objects_api.py"):
            module.unlink()


def function_names(source: Path = REPO) -> list[str]:
    """Every function of the template: each folder of functions/ with a handler."""
    return sorted(path.parent.name for path in (source / "functions").glob("*/handler.py"))


def checkout(ref: str, target: Path) -> Path:
    """The code of a git ref (functions/, shared/, the Makefile) in ``target``: the baseline a
    benchmark compares with, side by side in one run (``git archive``: the working tree is not
    touched)."""
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "functions", "shared", "Makefile"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def build(target: Path, *, source: Path = REPO) -> dict[str, str]:
    """Lay out the runtime, the layer and every function's artifact of the code in ``source``
    under ``target``, precompiled; returns each function's Python path (artifact, layer,
    runtime), as Lambda orders them."""
    runtime, layer = target / "runtime", target / "layer" / "python"
    copy_distributions(closure(RUNTIME_DISTRIBUTIONS), runtime)
    layer_lock, kubernetes_lock = source / "requirements" / "layer.lock", source / "requirements" / "kubernetes.lock"
    copy_distributions(
        _shipped(layer_lock, source / "shared" / "requirements.txt", exclude=RUNTIME_DISTRIBUTIONS), layer
    )
    shutil.copytree(source / "shared" / "runplane", layer / "runplane", ignore=shutil.ignore_patterns("__pycache__"))
    paths = {}
    for name in function_names(source):
        artifact = target / "functions" / name
        (artifact / "functions").mkdir(parents=True)
        shutil.copy2(source / "functions" / "__init__.py", artifact / "functions" / "__init__.py")
        shutil.copytree(
            source / "functions" / name, artifact / "functions" / name, ignore=shutil.ignore_patterns("__pycache__")
        )
        requirements = source / "functions" / name / "requirements.txt"
        if requirements.exists():  # pip install --target: every requirement, whatever the runtime has
            copy_distributions(_shipped(kubernetes_lock, requirements), artifact)
            trim_kubernetes(artifact, source=source)
        paths[name] = ":".join(str(p) for p in (artifact, layer, runtime))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return paths
