{{/* Names and labels, in the usual Helm shape. */}}
{{- define "speech-coach.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "speech-coach.fullname" -}}
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

{{- define "speech-coach.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "speech-coach.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: speech-coach
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "bot") */}}
{{- define "speech-coach.selectorLabels" -}}
app.kubernetes.io/name: {{ include "speech-coach.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "speech-coach.componentLabels" -}}
{{ include "speech-coach.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image of one runtime target: (dict "ctx" $ "target" "bot") */}}
{{- define "speech-coach.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .ctx.Values.image.tag -}}
{{- if hasPrefix "@" $tag -}}
{{ printf "%s/speech-coach-%s%s" .ctx.Values.image.registry .target $tag }}
{{- else -}}
{{ printf "%s/speech-coach-%s:%s" .ctx.Values.image.registry .target $tag }}
{{- end -}}
{{- end }}

{{- define "speech-coach.configMapName" -}}
{{ include "speech-coach.fullname" . }}-config
{{- end }}

{{- define "speech-coach.serviceAccountName" -}}
{{ include "speech-coach.fullname" . }}
{{- end }}

{{- define "speech-coach.strimziClusterName" -}}
{{ include "speech-coach.fullname" . }}-kafka
{{- end }}

{{/* Kafka bootstrap: the external servers, else the Strimzi cluster's bootstrap service. */}}
{{- define "speech-coach.kafkaBootstrap" -}}
{{- if .Values.kafka.bootstrapServers -}}
{{ .Values.kafka.bootstrapServers }}
{{- else if .Values.kafka.strimzi.enabled -}}
{{ include "speech-coach.strimziClusterName" . }}-kafka-bootstrap.{{ .Release.Namespace }}.svc:9092
{{- else -}}
{{ fail "kafka.bootstrapServers is required unless kafka.strimzi.enabled is true" }}
{{- end -}}
{{- end }}

{{/* One secret variable: (dict "ctx" $ "env" "SC_BOT__TOKEN" "ref" .Values.secrets.botToken) */}}
{{- define "speech-coach.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ default .ctx.Values.secrets.existingSecret .ref.name }}
      key: {{ .ref.key }}
      {{- if .ref.optional }}
      optional: true
      {{- end }}
{{- end }}

{{/*
Environment shared by every runtime: the ConfigMap of plain settings plus the secrets each runtime reads.
Least privilege is by runtime: (dict "ctx" $ "secrets" (list "pseudonymKey" ...)) names the secrets it gets.
*/}}
{{- define "speech-coach.env" -}}
{{- $ctx := .ctx -}}
{{- $vars := dict
  "botToken" "SC_BOT__TOKEN"
  "botWebhookSecret" "SC_BOT__WEBHOOK_SECRET"
  "openaiApiKey" "SC_OPENAI__API_KEY"
  "pseudonymKey" "SC_PRIVACY__PSEUDONYM_KEY"
  "s3AccessKey" "SC_S3__ACCESS_KEY"
  "s3SecretKey" "SC_S3__SECRET_KEY"
  "postgresUrl" "SC_POSTGRES__URL"
  "clickhouseUrl" "SC_CLICKHOUSE__URL"
  "kafkaSaslPassword" "SC_KAFKA__SASL_PASSWORD" -}}
{{- range .secrets }}
{{- if or (ne . "kafkaSaslPassword") $ctx.Values.kafka.saslMechanism }}
{{ include "speech-coach.secretEnv" (dict "ctx" $ctx "env" (get $vars .) "ref" (get $ctx.Values.secrets .)) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "speech-coach.envFrom" -}}
- configMapRef:
    name: {{ include "speech-coach.configMapName" . }}
{{- end }}

{{/* Writable scratch space; the root filesystem is read-only. */}}
{{- define "speech-coach.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end }}

{{- define "speech-coach.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "speech-coach.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* Plain settings: the ConfigMap's data, also inlined into the pre-upgrade migration Job. */}}
{{- define "speech-coach.configData" -}}
SC_ENVIRONMENT: {{ .Values.environment | quote }}
SC_LOG__LEVEL: {{ .Values.log.level | quote }}
SC_LOG__JSON_OUTPUT: {{ .Values.log.jsonOutput | quote }}
SC_KAFKA__BOOTSTRAP_SERVERS: {{ include "speech-coach.kafkaBootstrap" . | quote }}
SC_KAFKA__TOPIC_PREFIX: {{ .Values.kafka.topicPrefix | quote }}
SC_KAFKA__DEFAULT_PARTITIONS: {{ .Values.kafka.defaultPartitions | quote }}
SC_KAFKA__REPLICATION_FACTOR: {{ .Values.kafka.replicationFactor | quote }}
SC_KAFKA__SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
SC_KAFKA__SASL_MECHANISM: {{ .Values.kafka.saslMechanism | quote }}
SC_KAFKA__SASL_USERNAME: {{ .Values.kafka.saslUsername | quote }}
SC_CLICKHOUSE__DATABASE: {{ .Values.clickhouse.database | quote }}
SC_POSTGRES__DATABASE: {{ .Values.postgres.database | quote }}
SC_S3__ENDPOINT_URL: {{ .Values.s3.endpointUrl | quote }}
SC_S3__REGION: {{ .Values.s3.region | quote }}
SC_S3__AUDIO_BUCKET: {{ .Values.s3.audioBucket | quote }}
SC_S3__EXPORTS_BUCKET: {{ .Values.s3.exportsBucket | quote }}
{{- range $name, $value := .Values.extraEnv }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end }}

{{/*
Labels of the Strimzi resources. Strimzi copies them onto the Kafka pods, so they leave out `part-of`: the
release's default-deny NetworkPolicy must not select Kafka, whose policies Strimzi writes itself.
*/}}
{{- define "speech-coach.strimziLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: kafka
{{- end }}
