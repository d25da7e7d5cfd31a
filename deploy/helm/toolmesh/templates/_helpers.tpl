{{/* The release's name prefix: "<release>-toolmesh", or just the release name when it already says toolmesh. */}}
{{- define "toolmesh.fullname" -}}
{{- if contains "toolmesh" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-toolmesh" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "toolmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: toolmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (an agent kind, the orchestrator or the gateway). Call with (dict "root" $ "component" "hr"). */}}
{{- define "toolmesh.selectorLabels" -}}
app.kubernetes.io/name: toolmesh
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "toolmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "toolmesh.tokensSecret" -}}
{{- default (printf "%s-tokens" (include "toolmesh.fullname" .)) .Values.tokens.existingSecret -}}
{{- end -}}

{{/*
Environment every toolmesh container gets: where Consul is, the mesh's tokens, logging, tracing.
HOST_IP comes first: CONSUL_HTTP_ADDR refers to it as $(HOST_IP), which Kubernetes expands only
from variables defined before it.
*/}}
{{- define "toolmesh.commonEnv" -}}
{{- $c := .Values.consul -}}
- name: HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: CONSUL_HTTP_ADDR
{{- if eq $c.mode "hostAgent" }}
  value: {{ printf "%s://$(HOST_IP):%d" $c.scheme (int $c.port) | quote }}
{{- else if eq $c.mode "address" }}
  value: {{ required "consul.address is required when consul.mode is \"address\" (e.g. http://consul-client.consul.svc:8500)" $c.address | quote }}
{{- else }}
  {{- fail (printf "consul.mode must be \"hostAgent\" or \"address\"; got %q" $c.mode) }}
{{- end }}
{{- if $c.tokenSecret.name }}
- name: CONSUL_HTTP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $c.tokenSecret.name }}
      key: {{ $c.tokenSecret.key }}
{{- end }}
- name: MESH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "toolmesh.tokensSecret" . }}
      key: MESH_TOKEN
- name: MESH_METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "toolmesh.tokensSecret" . }}
      key: MESH_METRICS_TOKEN
      optional: true
- name: MESH_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- if .Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otlpEndpoint | quote }}
{{- end }}
{{- with .Values.failoverDatacenters }}
- name: MESH_FAILOVER_DCS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every Deployment. */}}
{{- define "toolmesh.podSpecCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
serviceAccountName: {{ include "toolmesh.fullname" .root }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ .root.Values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .root.Values.spreadOverNodes }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "toolmesh.selectorLabels" . | nindent 8 }}
{{- end }}
volumes:
  # The root filesystem is read-only; Node and its libraries may still want a scratch /tmp.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end -}}

{{/* Probes on the process's own health endpoint, on its named port "http". */}}
{{- define "toolmesh.probes" -}}
{{- $p := .Values.probes -}}
startupProbe:
  httpGet: { path: /healthz, port: http }
  {{- toYaml $p.startup | nindent 2 }}
readinessProbe:
  httpGet: { path: /healthz, port: http }
  {{- toYaml $p.readiness | nindent 2 }}
livenessProbe:
  httpGet: { path: /healthz, port: http }
  {{- toYaml $p.liveness | nindent 2 }}
{{- end -}}
