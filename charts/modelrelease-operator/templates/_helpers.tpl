{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "modelrelease-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, unless it already contains the chart name. */}}
{{- define "modelrelease-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelrelease-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelrelease-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modelrelease-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modelrelease-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelrelease
{{- end }}

{{- define "modelrelease-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelrelease-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelrelease-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaced permissions: granted cluster-wide or per watched namespace. */}}
{{- define "modelrelease-operator.namespacedRules" -}}
- apiGroups: ["modelrelease.io"]
  resources: ["modelreleases"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["modelrelease.io"]
  resources: ["modelreleases/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Registry credentials named by spec.registry.credentialsSecret: read one by name, never list or watch.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Trusted signing keys named by spec.verify.signersConfigMap: read by name at each verification.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# The post-rollout smoke test (spec.rollout.smokeTest) finds the new pods' IPs by the Deployment's selector.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- end }}

{{/* Cluster-scoped reads kopf needs to notice CRDs appearing (both RBAC shapes). Namespaces are not
listed: cluster-wide kopf does not observe them, and with listed namespaces it falls back to exactly those. */}}
{{- define "modelrelease-operator.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
