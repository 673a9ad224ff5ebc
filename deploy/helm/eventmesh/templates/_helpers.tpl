{{/* Names and labels. */}}

{{- define "eventmesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: <fullname>-<component>. */}}
{{- define "eventmesh.name" -}}
{{- printf "%s-%s" (include "eventmesh.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "eventmesh.selectorLabels" -}}
app.kubernetes.io/name: eventmesh
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "eventmesh.labels" -}}
{{ include "eventmesh.selectorLabels" . }}
app.kubernetes.io/part-of: eventmesh
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "eventmesh.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* NATS: where it is and how many replicas the stream and the durables get. */}}

{{/* The NATS chart's Service name (its nats.fullname). */}}
{{- define "eventmesh.natsName" -}}
{{- if .Values.nats.fullnameOverride -}}
{{- .Values.nats.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "nats" .Values.nats.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "eventmesh.natsURL" -}}
{{- if .Values.nats.enabled -}}
nats://{{ include "eventmesh.natsName" . }}:4222
{{- else if .Values.externalNats.url -}}
{{ .Values.externalNats.url }}
{{- else -}}
{{ fail "nats.enabled is false: set externalNats.url to the NATS servers (NATS_URL)" }}
{{- end -}}
{{- end -}}

{{- define "eventmesh.streamReplicas" -}}
{{- if .Values.nats.enabled -}}
{{- $cluster := (.Values.nats.config | default dict).cluster | default dict -}}
{{- if $cluster.enabled -}}{{ $cluster.replicas | default 3 | int }}{{- else -}}1{{- end -}}
{{- else -}}
{{- .Values.externalNats.streamReplicas | default 1 | int -}}
{{- end -}}
{{- end -}}

{{/*
Secrets the chart generates: a key that must be set (its listener is beyond
loopback) and that no Secret was named for. A YAML map of variable: true.
*/}}
{{- define "eventmesh.generatedKeys" -}}
{{- $global := .Values.secretEnv | default dict -}}
{{- if and .Values.producer.enabled (not (hasKey (merge dict .Values.producer.secretEnv $global) "INGEST_API_KEY")) }}
INGEST_API_KEY: true
{{- end }}
{{- if and .Values.archiver.enabled (not (hasKey (merge dict .Values.archiver.secretEnv $global) "ARCHIVE_API_KEY")) }}
ARCHIVE_API_KEY: true
{{- end }}
{{- if and .Values.console.enabled .Values.console.ingress.enabled (not (hasKey (merge dict .Values.console.secretEnv $global) "CONSOLE_PASSWORD")) }}
CONSOLE_PASSWORD: true
{{- end }}
{{- end -}}

{{- define "eventmesh.generatedSecret" -}}
{{- include "eventmesh.name" (dict "root" . "component" "generated") -}}
{{- end -}}

{{/* Whether the archive is on PostgreSQL (ARCHIVE_DSN from a Secret). */}}
{{- define "eventmesh.archivePostgres" -}}
{{- if hasKey (merge dict .Values.archiver.secretEnv (.Values.secretEnv | default dict)) "ARCHIVE_DSN" -}}true{{- end -}}
{{- end -}}

{{/*
The environment of one container, from a dict:
  root      the chart's context
  what      the component's name in messages (producer, webhooks[erp], …)
  set       variables the chart sets (refused in env and secretEnv)
  env       the component's env, over the chart-wide env
  secretEnv the component's secretEnv, over the chart-wide secretEnv
  required  variables that must come from a Secret (generated when not named)
*/}}
{{- define "eventmesh.env" -}}
{{- $root := .root -}}
{{- $env := merge dict (.env | default dict) ($root.Values.env | default dict) -}}
{{- $secretEnv := merge dict (.secretEnv | default dict) ($root.Values.secretEnv | default dict) -}}
{{- range $name, $_ := .set -}}
{{- if or (hasKey $env $name) (hasKey $secretEnv $name) -}}
{{- fail (printf "%s: %s is set by the chart (see values.yaml: nats, externalNats, durable, ingress); remove it from env/secretEnv" $.what $name) -}}
{{- end -}}
{{- end -}}
{{- range $name, $value := .set }}
- name: {{ $name }}
  value: {{ toString $value | quote }}
{{- end }}
{{- range $name, $value := $env }}
{{- if hasKey $secretEnv $name -}}
{{- fail (printf "%s: %s is in both env and secretEnv" $.what $name) -}}
{{- end }}
- name: {{ $name }}
  value: {{ toString $value | quote }}
{{- end }}
{{- range $name, $ref := $secretEnv }}
{{- if not (and (kindIs "map" $ref) $ref.name $ref.key) -}}
{{- fail (printf "%s: secretEnv.%s needs the Secret's name and key: {name: …, key: …}" $.what $name) -}}
{{- end }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
{{- range .required }}
{{- if not (hasKey $secretEnv .) }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "eventmesh.generatedSecret" $root }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
One container, from a dict:
  root, what, set, env, secretEnv, required   as for eventmesh.env
  name       the container's name
  binary     the binary in the image (/producer, …)
  c          the component's values (resources, natsCredentials)
  ports      a list of {name, port}
  health     the name of the port serving /healthz and /readyz
  data       mount the archive volume at /data
*/}}
{{- define "eventmesh.container" -}}
{{- $set := .set -}}
{{- $creds := .c.natsCredentials | default dict -}}
{{- if $creds.secretName -}}
{{- $set = merge (dict "NATS_CREDS" (printf "/etc/eventmesh/nats/%s" ($creds.key | default "nats.creds"))) $set -}}
{{- end -}}
- name: {{ .name }}
  image: {{ include "eventmesh.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: [{{ printf "/%s" .binary | quote }}]
  env:
    {{- include "eventmesh.env" (merge (dict "set" $set) .) | trim | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      containerPort: {{ .port }}
      protocol: TCP
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ .health }}
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 6
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ .health }}
    periodSeconds: 5
    timeoutSeconds: 3
    failureThreshold: 2
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml (.c.resources | default dict) | nindent 4 }}
  volumeMounts:
    - name: tmp-{{ .name }}
      mountPath: /tmp
    {{- if $creds.secretName }}
    - name: nats-creds-{{ .name }}
      mountPath: /etc/eventmesh/nats
      readOnly: true
    {{- end }}
    {{- if .data }}
    - name: data
      mountPath: /data
    {{- end }}
{{- end -}}

{{/* The volumes of one container (see eventmesh.container). */}}
{{- define "eventmesh.containerVolumes" -}}
- name: tmp-{{ .name }}
  emptyDir: {}
{{- with .c.natsCredentials }}{{ if .secretName }}
- name: nats-creds-{{ $.name }}
  secret:
    secretName: {{ .secretName }}
{{- end }}{{ end }}
{{- end -}}

{{/*
A Deployment, from a dict:
  root, component, c (replicas, podAnnotations, nodeSelector, tolerations, affinity)
  replicas    its replicas
  containers  a list of container dicts (see eventmesh.container)
  volumes     more volumes (YAML), or empty
  recreate    strategy Recreate instead of RollingUpdate
*/}}
{{- define "eventmesh.deployment" -}}
{{- $root := .root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "eventmesh.name" . }}
  labels:
    {{- include "eventmesh.labels" . | nindent 4 }}
spec:
  replicas: {{ .replicas }}
  {{- if .recreate }}
  strategy:
    type: Recreate
  {{- end }}
  selector:
    matchLabels:
      {{- include "eventmesh.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "eventmesh.labels" . | nindent 8 }}
      {{- with .c.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      # Consumers drain on SIGTERM: in-flight deliveries get DRAIN_TIMEOUT (30s).
      terminationGracePeriodSeconds: 45
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        {{- range .containers }}
        {{- include "eventmesh.container" (merge (dict "root" $root) .) | nindent 8 }}
        {{- end }}
      volumes:
        {{- range .containers }}
        {{- include "eventmesh.containerVolumes" . | nindent 8 }}
        {{- end }}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with .c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- if gt (int .replicas) 1 }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "eventmesh.name" . }}
  labels:
    {{- include "eventmesh.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "eventmesh.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/*
A Service of one component, from a dict: root, component, ports ({name,
port}), type, and select (the component whose pods it selects, when not its own).
*/}}
{{- define "eventmesh.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "eventmesh.name" . }}
  labels:
    {{- include "eventmesh.labels" . | nindent 4 }}
spec:
  type: {{ .type | default "ClusterIP" }}
  selector:
    {{- include "eventmesh.selectorLabels" (dict "root" .root "component" (.select | default .component)) | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
{{- end -}}

{{/*
An Ingress to one Service port, from a dict: root, component, ingress
(values), port (name), values (its key in messages), paths (the default
paths of a host entry without its own).
*/}}
{{- define "eventmesh.ingress" -}}
{{- $svc := include "eventmesh.name" . -}}
{{- $port := .port -}}
{{- $paths := .paths | default (list "/") -}}
{{- if not .ingress.hosts -}}
{{- $values := .values | default .component -}}
{{- fail (printf "%s.ingress.enabled needs at least one entry in %s.ingress.hosts" $values $values) -}}
{{- end -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $svc }}
  labels:
    {{- include "eventmesh.labels" . | nindent 4 }}
  {{- with .ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with .ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    {{- range .ingress.hosts }}
    - host: {{ .host | quote }}
      http:
        paths:
          {{- range (.paths | default $paths) }}
          - path: {{ . }}
            pathType: Prefix
            backend:
              service:
                name: {{ $svc }}
                port:
                  name: {{ $port }}
          {{- end }}
    {{- end }}
{{- end -}}
