"""``modelrelease serve``: the serving image's entrypoint, which serves only the bytes that were verified.

The operator verifies a version's artifacts when it decides to roll it out, but every pod loads the
model later, from the store, and again at each restart: bytes altered in between would be served
unnoticed. This entrypoint closes that gap. It downloads the pinned model (``MODEL_URI``, e.g.
``models:/fraud/7``) into an empty local folder (an emptyDir in the pod), recomputes the canonical
digest with the operator's own code (:mod:`modelrelease.registry.digest`), and refuses to start when
it differs from ``MODEL_DIGEST``, the digest the operator verified: exit status 1 and one line naming
both digests, on stderr and in the termination log (``/dev/termination-log``, which Kubernetes shows
in the pod's status). Otherwise it replaces itself with ``mlflow models serve`` on the local copy, so
what serves is exactly what was hashed. Without ``MODEL_DIGEST`` (digest and signature checks off)
it serves what it downloaded and says so. A SageMaker model package's ``s3://…/model.tar.gz`` is fetched
with boto3 and unpacked under the operator's archive rules instead (:func:`fetch_archive`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from modelrelease.api.models import DIGEST_PATTERN, MODEL_DIGEST_ENV, MODEL_URI_ENV
from modelrelease.clientenv import bound_mlflow_client
from modelrelease.registry.digest import local_digest

DEFAULT_PORT = 8080
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_ENV = "MODELRELEASE_TERMINATION_LOG"
MODEL_DIR_ENV = "MODELRELEASE_MODEL_DIR"


class Refused(Exception):
    """Why the model is not served; one line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument(
        "--model-dir",
        default=env.get(MODEL_DIR_ENV) or str(Path(tempfile.gettempdir(), "model")),
        help=f"where the model is downloaded, emptied first (default ${MODEL_DIR_ENV} or $TMPDIR/model)",
    )
    parser.add_argument(
        "--termination-log",
        default=env.get(TERMINATION_LOG_ENV) or TERMINATION_LOG,
        help=f"file the refusal is also written to, when writable (default ${TERMINATION_LOG_ENV} or "
        f"{TERMINATION_LOG})",
    )


def _empty(folder: Path) -> None:
    # An emptyDir outlives container restarts: never hash or serve what an earlier start left there.
    if folder.exists():
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def fetch(uri: str, expected: str | None, folder: Path) -> tuple[Path, str]:
    """Download ``uri`` into ``folder`` and return (local model path, its digest); Refused when the
    digest is not ``expected`` (None: nothing to compare with) or the model cannot be had."""
    if expected is not None and re.fullmatch(DIGEST_PATTERN, expected) is None:
        raise Refused(f"{MODEL_DIGEST_ENV}={expected[:80]!r} is not a sha256:<hex> digest")
    _empty(folder)
    local = fetch_archive(uri, folder) if is_archive_uri(uri) else _download(uri, folder)
    actual = local_digest(local)
    if expected is not None and actual != expected:
        raise Refused(
            f"{uri} has digest {actual}, expected {expected} ({MODEL_DIGEST_ENV}): refusing to serve it"
        )
    return local, actual


def _download(uri: str, folder: Path) -> Path:
    """An MLflow model URI (``models:/…``, ``runs:/…``, an artifact location) downloaded by MLflow."""
    bound_mlflow_client()
    import mlflow.artifacts  # the serving image's MLflow; imported late, it is slow to import
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    except (MlflowException, OSError) as exc:
        raise Refused(f"cannot download {uri}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# ------------------------------------------------------------------ s3://…/model.tar.gz (SageMaker packages)
# A SageMaker model package's MODEL_URI is the model.tar.gz at its container's ModelDataUrl: fetched with
# boto3 (credentials, region and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL as boto3 reads them), streamed to
# the model folder, then unpacked with the operator's own member rules (modelrelease.registry.sagemaker):
# absolute paths, `..`, links and devices refuse the archive, nothing is written outside the folder. The
# MLflow model is the archive root or its single top-level folder, as the operator hashed it.

ARCHIVE_NAME = "model.tar.gz"
UNPACKED_NAME = "model"


def is_archive_uri(uri: str) -> bool:
    """Whether ``uri`` names a tarball in S3 (a SageMaker ModelDataUrl), not something MLflow downloads."""
    return uri.startswith("s3://") and uri.endswith((".tar.gz", ".tgz"))


def fetch_archive(uri: str, folder: Path) -> Path:
    """Download and unpack the tarball ``uri`` into ``folder``; the local MLflow model's root, or Refused."""
    import boto3.exceptions
    import botocore.exceptions

    from modelrelease.registry.sagemaker import boto3_client, split_s3_uri

    tarball = folder / ARCHIVE_NAME
    bucket, key = split_s3_uri(uri)
    try:
        boto3_client("s3", None).download_file(bucket, key, str(tarball))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, boto3.exceptions.Boto3Error,
            OSError) as exc:  # fmt: skip
        raise Refused(f"cannot download {uri}: {_first_line(exc)}") from None
    try:
        return unpack_archive(tarball, folder / UNPACKED_NAME, uri)
    finally:
        tarball.unlink(missing_ok=True)


def unpack_archive(tarball: Path, target: Path, location: str) -> Path:
    """Unpack the (gzipped) tar ``tarball`` into the folder ``target``, refusing hostile members; returns
    the model's root (``target``, or its single top-level folder)."""
    from modelrelease.registry.base import RegistryError
    from modelrelease.registry.sagemaker import archive_root, checked_members

    paths: list[str] = []
    try:
        with tarfile.open(tarball, mode="r|*") as archive:
            for member, path in checked_members(archive, location):
                source = archive.extractfile(member)
                if source is None:
                    continue
                destination = target / path
                destination.parent.mkdir(parents=True, exist_ok=True)
                with source, destination.open("xb") as out:
                    shutil.copyfileobj(source, out)
                paths.append(path)
    except RegistryError as exc:
        raise Refused(str(exc)) from None
    except (tarfile.TarError, EOFError) as exc:
        raise Refused(f"{location} is not a readable tar archive: {_first_line(exc)}") from None
    except OSError as exc:
        raise Refused(f"cannot unpack {location}: {_first_line(exc)}") from None
    top = archive_root(paths)
    return target / top if top else target


def _terminate(message: str, termination_log: str) -> int:
    line = f"modelrelease serve: {message}"
    print(line, file=sys.stderr)
    with contextlib.suppress(OSError):  # not in a pod (or no such mount): stderr is all there is
        Path(termination_log).write_text(line + "\n", encoding="utf-8")
    return 1


def main(args: argparse.Namespace) -> int:
    """Verify, then exec ``mlflow models serve``; returns only when it refuses (exit status 1)."""
    uri = os.environ.get(MODEL_URI_ENV, "").strip()
    if not uri:
        return _terminate(f"{MODEL_URI_ENV} is not set", args.termination_log)
    expected = os.environ.get(MODEL_DIGEST_ENV, "").strip() or None
    try:
        local, actual = fetch(uri, expected, Path(args.model_dir))
    except Refused as exc:
        return _terminate(str(exc), args.termination_log)
    verdict = "matches" if expected else f"not checked: {MODEL_DIGEST_ENV} is not set"
    print(f"modelrelease serve: {uri} downloaded to {local}, digest {actual} ({verdict})", file=sys.stderr)
    serve = [
        "models",
        "serve",
        "-m",
        str(local),
        "-h",
        args.host,
        "-p",
        str(args.port),
        "--env-manager",
        "local",
    ]
    sys.stderr.flush()
    # mlflow starts its server (uvicorn) by name: find it beside this interpreter, as in a venv's bin.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.execve(sys.executable, [sys.executable, "-m", "mlflow", *serve], {**os.environ, "PATH": path})
