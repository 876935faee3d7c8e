"""The `modelrelease` command: run the operator, the local sandbox, the demo and the registration tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modelrelease.serve import add_arguments as add_serve_arguments


def _sandbox(args: argparse.Namespace) -> int:
    from modelrelease.sandbox import stack

    directory = Path(args.dir).resolve()
    if args.action == "up":
        try:
            info = stack.up(directory)
        except stack.SandboxError as exc:
            print(f"modelrelease sandbox up: {exc}", file=sys.stderr)
            return 1
        print(f"sandbox is up: source {info.dir / 'env'} to use it")
        print(f"  Kubernetes API  {info.api_url}")
        print(f"  MLflow          {info.mlflow_url}")
        print(f"  S3 API          {info.s3_url} (bucket {info.bucket})")
    else:
        stack.down(directory)
        print(f"sandbox in {directory} is down")
    return 0


def _run(args: argparse.Namespace) -> int:
    from modelrelease import runner

    namespaces = [n for n in (args.namespace or []) if n] or None
    runner.run(namespaces=namespaces, verbose=args.verbose)
    return 0


def _given(*values: str | None) -> list[str]:
    return [value for value in values if value is not None]


def _digest(args: argparse.Namespace) -> int:
    from modelrelease.registry.base import RegistryError
    from modelrelease.registry.commands import digest_command, sagemaker_digest_command

    try:
        if args.registry == "sagemaker":
            print(sagemaker_digest_command([args.model_uri, *_given(args.version)], args.region))
        elif args.version or args.region:
            raise RegistryError("MLflow: name the version in MODEL_URI (models:/NAME/N), with no --region")
        else:
            print(digest_command(args.model_uri))
    except RegistryError as exc:
        print(f"modelrelease digest: {exc}", file=sys.stderr)
        return 1
    return 0


def _stamp(args: argparse.Namespace) -> int:
    from modelrelease.registry.base import RegistryError
    from modelrelease.registry.commands import sagemaker_stamp_command, stamp_command

    try:
        if args.registry == "sagemaker":
            arn, digest = sagemaker_stamp_command([args.name, *_given(args.version)], args.tag, args.region)
            print(f"{arn}: {args.tag}={digest}")
            return 0
        if args.version is None or args.region:
            raise RegistryError("MLflow: name a registered model and one version (NAME VERSION), no --region")
        digest = stamp_command(args.name, args.version, args.tag)
    except RegistryError as exc:
        print(f"modelrelease stamp: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name} version {args.version}: {args.tag}={digest}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from modelrelease.registry.base import RegistryError
    from modelrelease.sign import sign_command

    try:
        where = sign_command(args.name, args.version, Path(args.private_key))
    except RegistryError as exc:
        print(f"modelrelease sign: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name} version {args.version}: signed, {where}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from modelrelease import serve

    return serve.main(args)


def _demo(args: argparse.Namespace) -> int:
    from modelrelease import demo

    return demo.main(Path(args.dir).resolve(), keep=args.keep)


def _add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        choices=["mlflow", "sagemaker"],
        default="mlflow",
        help="mlflow (MLFLOW_TRACKING_URI) or sagemaker (boto3's credentials and endpoints; default mlflow)",
    )
    parser.add_argument("--region", help="sagemaker: AWS region (default: the ARN's, AWS_REGION)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelrelease", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser("sandbox", help="start or stop the local sandbox stack")
    sandbox.add_argument("action", choices=["up", "down"])
    sandbox.add_argument("--dir", required=True, help="folder for kubeconfig, env file and logs")
    sandbox.set_defaults(func=_sandbox)

    run = commands.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument(
        "--namespace", "-n", action="append", help="watch only this namespace (repeatable; default: all)"
    )
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=_run)

    digest = commands.add_parser("digest", help="print the canonical sha256 digest of a model's artifacts")
    digest.add_argument(
        "model_uri",
        help="models:/NAME/N (models:/NAME/versions/N is accepted too); sagemaker: GROUP, or the package ARN",
    )
    digest.add_argument("version", nargs="?", help="sagemaker: the version")
    _add_registry_arguments(digest)
    digest.set_defaults(func=_digest)

    stamp = commands.add_parser("stamp", help="record a version's digest as a registry tag")
    stamp.add_argument("name", help="registered model name; sagemaker: model package group, or its ARN")
    stamp.add_argument("version", nargs="?", help="model version number")
    stamp.add_argument(
        "--tag",
        default="modelrelease.io/sha256",
        help="version tag to write (sagemaker: the CustomerMetadataProperties key)",
    )
    _add_registry_arguments(stamp)
    stamp.set_defaults(func=_stamp)

    sign = commands.add_parser(
        "sign", help="sign a version's files (OpenSSF model signing) and upload model.sig"
    )
    sign.add_argument("--private-key", required=True, help="PEM EC private key (P-256, P-384 or P-521)")
    sign.add_argument("name", help="registered model name")
    sign.add_argument("version", help="model version number")
    sign.set_defaults(func=_sign)

    serve = commands.add_parser(
        "serve",
        help="serving image entrypoint: download MODEL_URI, check MODEL_DIGEST, run mlflow models serve",
    )
    add_serve_arguments(serve)
    serve.set_defaults(func=_serve)

    demo = commands.add_parser("demo", help="tell the whole release story on a local sandbox")
    demo.add_argument("--dir", default=".sandbox/demo", help="sandbox folder (default .sandbox/demo)")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
