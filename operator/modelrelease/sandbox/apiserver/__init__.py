"""An in-memory Kubernetes API server for the sandbox: plain HTTP, no auth, good enough for kubectl, helm,
kopf and the official client to work unmodified.

Run it with `python -m modelrelease.sandbox.apiserver --host 127.0.0.1 --port 0 --port-file FILE`.

Layout: `store` (objects, the resourceVersion counter, watch history and watchers), `resources` (the
type registry: built-ins plus what CRDs declare), `cluster` (object semantics: create/update/patch/apply/
delete, the status and scale subresources, generation, finalizers, namespaces, garbage collection, CRDs),
`server` (HTTP: routing, decoding, content negotiation, watch streams), and small pure helpers:
`defaults`, `validation`, `builtin_schema`, `selectors`, `tables`, `discovery`, `openapi`, `conversion`,
`managed`, `protobuf`, `crds`, `times`, `errors`; `patch` and `schema` implement the patch formats and CRD
structural schemas (pruning, defaulting, validation with CEL).

Simplified on purpose: field ownership uses a name/port/... key heuristic for lists rather than each
field's declared list type; garbage collection is synchronous; Foreground deletion deletes dependents
first instead of waiting on a `foregroundDeletion` finalizer; deleting a CRD drops its objects at once;
no authn/authz, no admission webhooks, no per-namespace `default` ServiceAccount or `kube-root-ca.crt`,
no pods/log or exec; OpenAPI v3 only describes operations (plus CRD schemas); protobuf request bodies
are decoded only for the kinds client-go's typed clients create in practice (ConfigMap, Secret,
Namespace, ServiceAccount, Event).
"""
