{{/* Chart name, truncated to the 63 characters a label value may have. */}}
{{- define "kubeproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects: the release name, with the chart name unless it already holds it. */}}
{{- define "kubeproxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kubeproxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubeproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubeproxy.labels" -}}
helm.sh/chart: {{ include "kubeproxy.chart" . }}
{{ include "kubeproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kubeproxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubeproxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubeproxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The ports come from the proxy config itself, so the container, probes and Service cannot disagree with it. Defaults: those of src/config/schema.ts. */}}
{{- define "kubeproxy.listenPort" -}}
{{- dig "proxy" "listen" "port" 8080 .Values.config | int -}}
{{- end -}}

{{- define "kubeproxy.adminPort" -}}
{{- dig "proxy" "admin" "port" 9901 .Values.config | int -}}
{{- end -}}

{{/* Where the ConfigMap is mounted (a directory, never subPath: subPath mounts do not see ConfigMap updates). */}}
{{- define "kubeproxy.configDir" -}}
/etc/kubeproxy
{{- end -}}

{{/* Milliseconds of a KubeProxy duration ("5s", "1m30s", "250ms", 0), as src/config/units.ts reads it. */}}
{{- define "kubeproxy.durationMs" -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h)" (toString .) -1 -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $unit := trimPrefix $n . -}}
{{- $scale := get (dict "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0) $unit -}}
{{- $total = addf $total (mulf (float64 $n) $scale) -}}
{{- end -}}
{{- $total | int64 -}}
{{- end -}}

{{/* Where the admin token Secret is mounted; proxy.admin.tokenFile points into it. */}}
{{- define "kubeproxy.adminTokenDir" -}}
/var/run/kubeproxy/admin
{{- end -}}

{{/* The Secret holding the admin token: an existing one, or the chart's own when adminToken.value is set. */}}
{{- define "kubeproxy.adminTokenSecret" -}}
{{- if .Values.adminToken.existingSecret -}}
{{- .Values.adminToken.existingSecret -}}
{{- else if .Values.adminToken.value -}}
{{- printf "%s-admin-token" (include "kubeproxy.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The config file the pods read: .Values.config, plus proxy.admin.tokenFile when a token Secret is mounted. */}}
{{- define "kubeproxy.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if include "kubeproxy.adminTokenSecret" . -}}
{{- $proxy := get $config "proxy" -}}
{{- $admin := default (dict) (get $proxy "admin") -}}
{{- $_ := set $admin "tokenFile" (printf "%s/%s" (include "kubeproxy.adminTokenDir" .) .Values.adminToken.key) -}}
{{- $_ := set $proxy "admin" $admin -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* "true" when a service finds its instances through the Kubernetes API (EndpointSlices): the pod then needs a token and RBAC. */}}
{{- define "kubeproxy.watchesEndpointSlices" -}}
{{- range (dig "proxy" "services" (list) .Values.config) -}}
{{- if and (kindIs "map" .) (hasKey (default (dict) .discovery) "kubernetes") -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* Prometheus Operator objects render when the cluster serves their API, or when told to regardless (helm template for GitOps). */}}
{{- define "kubeproxy.prometheusOperator" -}}
{{- if or .Values.metrics.skipCapabilityCheck (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}
