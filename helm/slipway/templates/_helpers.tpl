{{/*
Named templates of the slipway chart. Every name carries the chart prefix ("slipway.") so that
an umbrella chart including this one cannot collide with them.
*/}}

{{- define "slipway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name. Kubernetes names are DNS labels of at most 63 characters; components
append a suffix of up to 12 ("-code-server"), so the prefix is cut at 50 (63 - 12, minus one for
a trailing "-" trimSuffix may leave).
*/}}
{{- define "slipway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "slipway.codeServer.fullname" -}}
{{- printf "%s-code-server" (include "slipway.fullname" .) }}
{{- end }}

{{- define "slipway.mlflow.fullname" -}}
{{- printf "%s-mlflow" (include "slipway.fullname" .) }}
{{- end }}

{{- define "slipway.stack.configMapName" -}}
{{- printf "%s-stack" (include "slipway.fullname" .) }}
{{- end }}

{{- define "slipway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "slipway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slipway.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "slipway.labels" -}}
helm.sh/chart: {{ include "slipway.chart" . | quote }}
{{ include "slipway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: slipway
{{- end }}

{{- define "slipway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "slipway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: a digest wins over a tag; the tag defaults to the chart's appVersion. */}}
{{- define "slipway.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* Where the stack file, scratch space and SLIPWAY_HOME are mounted, in every Slipway pod. */}}
{{- define "slipway.stackDir" -}}/etc/slipway{{- end }}
{{- define "slipway.homeDir" -}}/var/lib/slipway{{- end }}

{{/*
The pod-level security context of every Slipway pod (and of run and step pods, through the
container context). runAsNonRoot and RuntimeDefault seccomp are not values: the chart never runs
anything as root.
*/}}
{{- define "slipway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level security context (repeated there so that it holds if a pod's is replaced). */}}
{{- define "slipway.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.securityContext.readOnlyRootFilesystem }}
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Cross-field checks Helm's schema cannot express: each stack component that reads a secret has
the Secret it reads. They fail the render with the value's path, like the schema does.
*/}}
{{- define "slipway.checks" -}}
{{- $stack := .Values.stack }}
{{- if and (eq (dig "instance" "storage" "" $stack) "postgres") (not .Values.secrets.postgres.name) }}
{{- fail "secrets.postgres.name: stack.instance.storage is postgres; name the existing Secret holding its password" }}
{{- end }}
{{- if and (eq (dig "alerter" "type" "" $stack) "webhook") (not .Values.secrets.alertWebhook.name) }}
{{- fail "secrets.alertWebhook.name: stack.alerter.type is webhook; name the existing Secret holding its URL" }}
{{- end }}
{{- with dig "orchestrator" "job_namespace" "" $stack }}
{{- if ne . $.Release.Namespace }}
{{- fail (printf "stack.orchestrator.job_namespace: %q is not the release namespace %q, where the chart's Role lets run pods create step Jobs" . $.Release.Namespace) }}
{{- end }}
{{- end }}
{{- include "slipway.checkResources" (list "codeServer" .Values.codeServer.resources) }}
{{- include "slipway.checkResources" (list "runPods" .Values.runPods.resources) }}
{{- include "slipway.checkResources" (list "mlflow" .Values.mlflow.resources) }}
{{- range $i, $served := .Values.servedModels }}
{{- include "slipway.checkResources" (list (printf "servedModels[%d]" $i) $served.resources) }}
{{- end }}
{{- end }}

{{/*
A request above its limit: the API server refuses the pod ("must be less than or equal to …
limit", naming the Deployment's field); here the render fails naming the value instead.
Called with (list PATH RESOURCES).
*/}}
{{- define "slipway.checkResources" -}}
{{- $path := index . 0 }}
{{- $resources := index . 1 | default dict }}
{{- $limits := $resources.limits | default dict }}
{{- range $name, $request := $resources.requests | default dict }}
{{- $limit := get $limits $name }}
{{- if and (not (kindIs "invalid" $limit)) (ne (toString $limit) "") (gt (include "slipway.quantity" $request | float64) (include "slipway.quantity" $limit | float64)) }}
{{- fail (printf "%s.resources.requests.%s: %v is above %s.resources.limits.%s (%v); Kubernetes refuses a pod whose request exceeds its limit" $path $name $request $path $name $limit) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A Kubernetes quantity (the schema's pattern: "500m", "2", "1.5Gi", "4G"; or a YAML number, which
Helm may hold as 1e+06) in base units (cores, bytes). A suffix it does not know fails the render.
*/}}
{{- define "slipway.quantity" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}
{{- . | float64 }}
{{- else }}
{{- $text := toString . }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?" $text }}
{{- $units := dict "" 1.0 "m" 0.001 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "P" 1000000000000000.0 "E" 1000000000000000000.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 }}
{{- $unit := trimPrefix $number $text }}
{{- if or (eq $number "") (not (hasKey $units $unit)) }}
{{- fail (printf "%q is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)" $text) }}
{{- end }}
{{- mulf ($number | float64) (get $units $unit) }}
{{- end }}
{{- end }}

{{/*
The environment of the code server, and of run and step pods (through the container context):
the stack file, SLIPWAY_HOME, plain values, and secrets by reference only. The variable names
the stack reads (instance.password_env, alerter.url_env) come from the stack itself, with the
same defaults as stacks/config.py, so the two cannot disagree.
*/}}
{{- define "slipway.env" -}}
- name: SLIPWAY_STACK
  value: {{ include "slipway.stackDir" . }}/stack.yaml
- name: SLIPWAY_HOME
  value: {{ include "slipway.homeDir" . }}
# The image's file system is read-only: libraries that cache under $HOME write to the emptyDir.
- name: HOME
  value: /tmp
{{- range $name, $value := .Values.env }}
- name: {{ $name | quote }}
  value: {{ $value | quote }}
{{- end }}
{{- /* Each secret only where the stack reads it: a Postgres password for a postgres instance,
       a webhook URL for a webhook alerter (optional: without it alerts are only logged). */}}
{{- $passwordEnv := dig "instance" "password_env" "DAGSTER_PG_PASSWORD" .Values.stack }}
{{- if and .Values.secrets.postgres.name $passwordEnv (eq (dig "instance" "storage" "" .Values.stack) "postgres") }}
- name: {{ $passwordEnv | quote }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.postgres.name | quote }}
      key: {{ .Values.secrets.postgres.key | quote }}
{{- end }}
{{- include "slipway.s3Env" . }}
{{- if and .Values.secrets.alertWebhook.name (eq (dig "alerter" "type" "" .Values.stack) "webhook") }}
- name: {{ dig "alerter" "url_env" "SLIPWAY_ALERT_WEBHOOK" .Values.stack | quote }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.alertWebhook.name | quote }}
      key: {{ .Values.secrets.alertWebhook.key | quote }}
      optional: true
{{- end }}
{{- range .Values.secrets.extra }}
- name: {{ .env | quote }}
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- end }}

{{/* S3 credentials by reference (the code server, run and step pods, and MLflow). */}}
{{- define "slipway.s3Env" -}}
{{- with .Values.secrets.s3.name }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.secrets.s3.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.secrets.s3.secretAccessKeyKey | quote }}
{{- end }}
{{- end }}

{{- define "slipway.volumes" -}}
- name: slipway-stack
  configMap:
    name: {{ include "slipway.stack.configMapName" . | quote }}
- name: slipway-tmp
  emptyDir: {}
- name: slipway-home
  emptyDir: {}
{{- end }}

{{- define "slipway.volumeMounts" -}}
- name: slipway-stack
  mountPath: {{ include "slipway.stackDir" . }}
  readOnly: true
- name: slipway-tmp
  mountPath: /tmp
- name: slipway-home
  mountPath: {{ include "slipway.homeDir" . }}
{{- end }}

{{/*
The code server's container context (DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT): Dagster stores it
with each run of this code location, and dagster-k8s applies it to the run pod (K8sRunLauncher)
and to every step pod (k8s_job_executor). So they get the same stack file, environment,
secrets, volumes, service account and security context as the code server. Keys are those of
dagster_k8s.container_context.K8sContainerContext.
*/}}
{{- define "slipway.containerContext" -}}
{{- $k8s := dict
  "namespace" .Release.Namespace
  "service_account_name" (include "slipway.serviceAccountName" .)
  "image_pull_policy" .Values.image.pullPolicy
  "env" (include "slipway.env" . | fromYamlArray)
  "volumes" (include "slipway.volumes" . | fromYamlArray)
  "volume_mounts" (include "slipway.volumeMounts" . | fromYamlArray)
  "security_context" (include "slipway.containerSecurityContext" . | fromYaml)
  "resources" (.Values.runPods.resources | toYaml | fromYaml)
  "run_k8s_config" (dict "pod_spec_config" (dict "security_context" (include "slipway.podSecurityContext" . | fromYaml)))
}}
{{- with .Values.imagePullSecrets }}
{{- $secrets := list }}
{{- range . }}
{{- $secrets = append $secrets (dict "name" .) }}
{{- end }}
{{- $_ := set $k8s "image_pull_secrets" $secrets }}
{{- end }}
{{- with .Values.runPods.labels }}
{{- $_ := set $k8s "labels" . }}
{{- end }}
{{- dict "k8s" $k8s | toJson }}
{{- end }}

{{/* Pod spec keys that may be empty: image pull secrets, nodeSelector, tolerations. Call with (list $ .Values.<component>). */}}
{{- define "slipway.podExtras" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
