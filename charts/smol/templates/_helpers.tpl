{{/* Chart name, overridable. */}}
{{- define "smol.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix of every resource. */}}
{{- define "smol.fullname" -}}
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

{{/* Chart label value. */}}
{{- define "smol.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods (never change them after install). */}}
{{- define "smol.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smol.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Standard labels on every object the chart writes, without a component. */}}
{{- define "smol.commonLabels" -}}
helm.sh/chart: {{ include "smol.chart" . }}
app.kubernetes.io/name: {{ include "smol.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: smolserve
{{- end }}

{{/* Standard labels of the operator's objects. */}}
{{- define "smol.labels" -}}
{{ include "smol.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "smol.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "smol.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The kopf peering object's name. */}}
{{- define "smol.peeringName" -}}
{{- default (include "smol.fullname" .) .Values.peering.name }}
{{- end }}

{{/* An image reference: repository@digest when a digest is set, else repository:tag (tag
defaults to the chart's appVersion). Call with (dict "image" .Values.x.image "root" $). */}}
{{- define "smol.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The operator's permissions: the minimum it uses, as docs/operator.md (RBAC) lists them
(tests/chart compares the two). Shared by the ClusterRole and the per-namespace Roles; the
peering rule is added by the caller (its resource differs by scope). No CRD or namespace
watch: the operator runs with --no-scanning. */}}
{{- define "smol.operatorRules" -}}
- apiGroups: ["smolserve.dev"]
  resources: ["smolserves"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["smolserve.dev"]
  resources: ["smolserves/status"]
  verbs: ["get", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services", "serviceaccounts"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["inference.networking.k8s.io"]
  resources: ["inferencepools"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- end }}

{{/* Namespace selector of the metrics monitors: the watched namespaces, or all. */}}
{{- define "smol.servedNamespaces" -}}
{{- if .Values.watchNamespaces }}
matchNames:
  {{- toYaml .Values.watchNamespaces | nindent 2 }}
{{- else }}
any: true
{{- end }}
{{- end }}

{{/* The vLLM server pods and Services the operator made for a SmolServe (not its Job pods). */}}
{{- define "smol.servedSelector" -}}
matchLabels:
  app.kubernetes.io/managed-by: smolserve-operator
  app.kubernetes.io/component: server
matchExpressions:
  - key: smolserve.dev/serve
    operator: Exists
{{- end }}
