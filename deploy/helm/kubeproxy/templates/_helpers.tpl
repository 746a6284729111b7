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

{{/* The image: the tag (image.tag, else appVersion) with the runtime's suffix: "-bun" for the Bun variant, unless the tag already ends with it. */}}
{{- define "kubeproxy.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- $suffix := include "kubeproxy.runtimeTagSuffix" . -}}
{{- if not (hasSuffix $suffix $tag) -}}
{{- $tag = printf "%s%s" $tag $suffix -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* node or bun (values.schema.json refuses anything else). */}}
{{- define "kubeproxy.runtime" -}}
{{- default "node" .Values.runtime -}}
{{- end -}}

{{/* The image tag's suffix of the runtime: the Dockerfile's stage name, none for node (the default stage). */}}
{{- define "kubeproxy.runtimeTagSuffix" -}}
{{- if eq (include "kubeproxy.runtime" .) "bun" -}}-bun{{- end -}}
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

{{/* The config file the pods read: .Values.config, plus proxy.admin.tokenFile when a token Secret is mounted, the Redis URL's reference when the shared cache tier is on, and proxy.tls with tls.enabled. */}}
{{- define "kubeproxy.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if include "kubeproxy.adminTokenSecret" . -}}
{{- $proxy := get $config "proxy" -}}
{{- $admin := default (dict) (get $proxy "admin") -}}
{{- $_ := set $admin "tokenFile" (printf "%s/%s" (include "kubeproxy.adminTokenDir" .) .Values.adminToken.key) -}}
{{- $_ := set $proxy "admin" $admin -}}
{{- end -}}
{{- if include "kubeproxy.redis.enabled" . -}}
{{- $proxy := get $config "proxy" -}}
{{- $cache := default (dict) (get $proxy "cache") -}}
{{- $shared := default (dict) (get $cache "shared") -}}
{{- $redis := default (dict) (get $shared "redis") -}}
{{- if hasKey $redis "url" -}}
{{- fail "config.proxy.cache.shared.redis.url would put the Redis URL (and its password) in the ConfigMap: with cache.shared.redis.enabled the chart passes it from a Secret (urlEnv); remove url" -}}
{{- end -}}
{{- $_ := set $redis "urlEnv" (include "kubeproxy.redis.urlEnv" .) -}}
{{- $_ := set $shared "redis" $redis -}}
{{- $_ := set $cache "shared" $shared -}}
{{- $_ := set $proxy "cache" $cache -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- /* proxy.tls: port 8443 and the mounted pair; other proxy.tls keys of config (minVersion, redirectHttp) stay. */ -}}
{{- $proxy := get $config "proxy" -}}
{{- $tls := default (dict) (get $proxy "tls") -}}
{{- $_ := set $tls "listen" (dict "address" (dig "listen" "address" "0.0.0.0" $proxy) "port" (include "kubeproxy.tlsPort" . | int)) -}}
{{- $dir := include "kubeproxy.tlsDir" . -}}
{{- $_ := set $tls "certificates" (list (dict "cert" (printf "%s/tls.crt" $dir) "key" (printf "%s/tls.key" $dir))) -}}
{{- $_ := set $proxy "tls" $tls -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The HTTPS container port (tls.enabled). */}}
{{- define "kubeproxy.tlsPort" -}}
8443
{{- end -}}

{{/* Where the TLS Secret is mounted: a directory, never subPath, so a renewal (the kubelet's ..data swap) reaches the proxy. */}}
{{- define "kubeproxy.tlsDir" -}}
/var/run/kubeproxy/tls
{{- end -}}

{{/* The TLS Secret: tls.secretName, or the one the chart's cert-manager Certificate writes. Fails when tls.enabled has neither. */}}
{{- define "kubeproxy.tlsSecret" -}}
{{- if .Values.tls.secretName -}}
{{- .Values.tls.secretName -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- printf "%s-tls" (include "kubeproxy.fullname" .) -}}
{{- else -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret) or tls.certManager.enabled" -}}
{{- end -}}
{{- end -}}

{{/* The names the cert-manager Certificate covers: tls.certManager.dnsNames, else every domain of config.proxy.services; one per line. */}}
{{- define "kubeproxy.tlsDnsNames" -}}
{{- $names := list -}}
{{- if .Values.tls.certManager.dnsNames -}}
{{- $names = .Values.tls.certManager.dnsNames -}}
{{- else -}}
{{- range (dig "proxy" "services" (list) .Values.config) -}}
{{- if kindIs "map" . -}}
{{- with .domain }}{{ $names = append $names . }}{{ end -}}
{{- range (default (list) .domains) }}{{ $names = append $names . }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- uniq $names | join "\n" -}}
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

{{/* The shared cache tier (proxy.cache.shared.redis): "true" when on. Fails on a setting that names no Redis or two. */}}
{{- define "kubeproxy.redis.enabled" -}}
{{- $r := .Values.cache.shared.redis -}}
{{- if $r.enabled -}}
{{- if and $r.deploy $r.existingSecret -}}
{{- fail "cache.shared.redis: set either existingSecret (an existing Redis) or deploy: true (the chart's Redis), not both" -}}
{{- else if not (or $r.deploy $r.existingSecret) -}}
{{- fail "cache.shared.redis.enabled needs existingSecret (a Secret holding the URL of an existing Redis) or deploy: true (the chart deploys one)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* "true" when the chart runs its own Redis. */}}
{{- define "kubeproxy.redis.deployed" -}}
{{- if and (include "kubeproxy.redis.enabled" .) .Values.cache.shared.redis.deploy -}}true{{- end -}}
{{- end -}}

{{/* The environment variable that carries the Redis URL into the proxy (from a Secret, never the ConfigMap). */}}
{{- define "kubeproxy.redis.urlEnv" -}}
REDIS_URL
{{- end -}}

{{/* Name of the chart's Redis objects (StatefulSet, Service, Secret, NetworkPolicy). */}}
{{- define "kubeproxy.redis.fullname" -}}
{{- printf "%s-redis" (include "kubeproxy.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Another app.kubernetes.io/name than the proxy's: the proxy's Deployment, Service, PDB and NetworkPolicy must never select the Redis pod. */}}
{{- define "kubeproxy.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-redis" (include "kubeproxy.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubeproxy.redis.labels" -}}
helm.sh/chart: {{ include "kubeproxy.chart" . }}
{{ include "kubeproxy.redis.selectorLabels" . }}
app.kubernetes.io/component: shared-cache
app.kubernetes.io/part-of: {{ include "kubeproxy.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Secret and key holding the Redis URL: the user's, or the chart's own when it deploys Redis. */}}
{{- define "kubeproxy.redis.secret" -}}
{{- default (include "kubeproxy.redis.fullname" .) .Values.cache.shared.redis.existingSecret -}}
{{- end -}}

{{- define "kubeproxy.redis.secretKey" -}}
{{- if .Values.cache.shared.redis.existingSecret -}}
{{- .Values.cache.shared.redis.existingSecretKey -}}
{{- else -}}
url
{{- end -}}
{{- end -}}
