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
