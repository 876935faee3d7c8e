"""Certificates and keys for the sandbox's control plane, made fresh by every `sandbox up`.

One CA signs the API server's serving certificate and a client certificate per identity; the service-account
key pair signs and verifies service-account tokens. Identities are the ones the control plane's bootstrap
RBAC already knows (system:kube-controller-manager, system:kube-scheduler) plus an administrator in
system:masters for the sandbox's user, kwok and the pod runner.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)
API_SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Identity:
    name: str  # file stem and kubeconfig user
    common_name: str
    organization: str | None = None


ADMIN = Identity("admin", "sandbox-admin", "system:masters")
CONTROLLER_MANAGER = Identity("kube-controller-manager", "system:kube-controller-manager")
SCHEDULER = Identity("kube-scheduler", "system:kube-scheduler")
CLIENTS = (ADMIN, CONTROLLER_MANAGER, SCHEDULER)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    @property
    def service_account_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def service_account_public_key(self) -> Path:
        return self.folder / "sa.pub"

    def kubeconfig(self, identity: Identity, server: str) -> str:
        """A kubeconfig for `identity` with everything inline, so every client (kubectl, helm, kopf, the
        official client, kwok) reads it alone."""

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "sandbox", "cluster": {"server": server, "certificate-authority-data": b64(self.ca)}}
            ],
            "users": [
                {
                    "name": identity.name,
                    "user": {
                        "client-certificate-data": b64(self.cert(identity.name)),
                        "client-key-data": b64(self.key(identity.name)),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "sandbox",
                    "context": {"cluster": "sandbox", "user": identity.name, "namespace": "default"},
                }
            ],
            "current-context": "sandbox",
        }
        return json.dumps(config, indent=2) + "\n"  # JSON is YAML


def create(folder: Path, service_ip: str) -> Pki:
    """Write a CA, the API server's serving pair, a client pair per identity, the service-account keys."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("modelrelease-sandbox-ca")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    _write(pki.ca, ca.public_bytes(serialization.Encoding.PEM))
    _write(folder / "ca.key", _pem_key(ca_key))

    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in API_SERVER_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip)]
    pairs: list[tuple[str, x509.Name, x509.ObjectIdentifier, list[x509.GeneralName] | None]]
    pairs = [("apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)]
    pairs += [
        (i.name, _name(i.common_name, i.organization), ExtendedKeyUsageOID.CLIENT_AUTH, None) for i in CLIENTS
    ]
    for name, subject, usage, alt_names in pairs:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key, ca_name, ca_key, usage=usage, sans=alt_names)
        _write(pki.cert(name), cert.public_bytes(serialization.Encoding.PEM))
        _write(pki.key(name), _pem_key(key))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki.service_account_key, _pem_key(sa_key))
    _write(
        pki.service_account_public_key,
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return pki
