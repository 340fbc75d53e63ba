{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "dunning.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name: RELEASE-dunning, or RELEASE when it already contains the chart
name. Kept to 56 characters so that "-engine" still fits in 63.
*/}}
{{- define "dunning.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dunning.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every resource.
*/}}
{{- define "dunning.labels" -}}
helm.sh/chart: {{ include "dunning.chart" . }}
app.kubernetes.io/name: {{ include "dunning.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dunning
{{- end }}

{{/*
Selector labels of one role. Call with (dict "ctx" $ "role" "api").
*/}}
{{- define "dunning.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dunning.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "dunning.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dunning.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dunning.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "dunning.databaseSecretName" -}}
{{- default (printf "%s-database" (include "dunning.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{/*
Secret environment: references only, never values.
*/}}
{{- define "dunning.secretEnv" -}}
- name: DUNNING_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "dunning.databaseSecretName" . }}
      key: {{ .Values.database.existingSecretKey }}
{{- if .Values.smtp.existingSecret }}
- name: DUNNING_SMTP_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.smtp.existingSecret }}
      key: {{ .Values.smtp.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
Pod template of a `dunning serve` Deployment. Call with
(dict "ctx" $ "role" "api" "resources" .Values.resources).
*/}}
{{- define "dunning.podTemplate" -}}
{{- $ctx := .ctx -}}
{{- $role := .role -}}
{{- $v := $ctx.Values -}}
metadata:
  labels:
    {{- include "dunning.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
    app.kubernetes.io/part-of: dunning
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- if eq $role "engine" }}
    {{- with $v.engine.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $ctx.Template.BasePath "/configmap.yaml") $ctx | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "dunning.serviceAccountName" $ctx }}
  automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  containers:
    - name: dunning
      image: {{ include "dunning.image" $ctx }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["dunning"]
      args: ["serve"]
      ports:
        - name: grpc
          containerPort: {{ $v.ports.grpc }}
          protocol: TCP
        - name: metrics
          containerPort: {{ $v.ports.metrics }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "dunning.fullname" $ctx }}
      env:
        # The engine pods do the background work; API pods do it too unless an engine
        # Deployment runs apart.
        - name: DUNNING_ROLES
          value: {{ if eq $role "engine" }}engine{{ else if $v.engine.enabled }}api{{ else }}api,engine{{ end }}
        {{- include "dunning.secretEnv" $ctx | nindent 8 }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: /readyz
          port: metrics
        {{- toYaml $v.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        {{- toYaml $v.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        {{- toYaml $v.probes.readiness | nindent 8 }}
      {{- if and (gt (int $v.preStopSleepSeconds) 0) (semverCompare ">=1.30.0-0" $ctx.Capabilities.KubeVersion.Version) }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ $v.preStopSleepSeconds }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: outbox
          mountPath: {{ $v.config.outboxDir }}
        {{- if $v.tls.existingSecret }}
        - name: tls
          mountPath: /etc/dunning/tls
          readOnly: true
        {{- end }}
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.tmpSizeLimit }}
    - name: outbox
      emptyDir:
        sizeLimit: {{ $v.outboxSizeLimit }}
    {{- if $v.tls.existingSecret }}
    - name: tls
      secret:
        secretName: {{ $v.tls.existingSecret }}
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $v.topologySpread.enabled }}
  topologySpreadConstraints:
    {{- range $v.topologySpread.topologyKeys }}
    - topologyKey: {{ . }}
      maxSkew: {{ $v.topologySpread.maxSkew }}
      whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "dunning.selectorLabels" (dict "ctx" $ctx "role" $role) | nindent 10 }}
      matchLabelKeys:
        - pod-template-hash
    {{- end }}
  {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
