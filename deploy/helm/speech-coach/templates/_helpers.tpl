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
The secret settings each runtime reads, found in its code; a runtime gets these and no others (docs/deploy.md#4-secrets,
tests/test_helm.py::test_each_workload_gets_exactly_the_secrets_its_code_reads). Names are keys of `secrets`.
- bot: Telegram credentials, pseudonyms (learner rows, log context), S3 (recordings), PostgreSQL, Kafka.
- ingest: ClickHouse and Kafka; the pseudonym key only because ingestion refuses to start with the public one.
- migrations: PostgreSQL (alembic) and ClickHouse; no Kafka.
- answers: S3 (the recordings, also as AWS_* for checkpoints) and Kafka; OpenAI only with an OpenAI engine.
- metrics: Kafka (S3 as AWS_* for checkpoints only).
- dagster: PostgreSQL, ClickHouse, S3, pseudonyms (exports, the learners copy), Kafka; set in the Dagster values.
*/}}
{{- define "speech-coach.runtimeSecrets" -}}
{{- $openai := or .Values.openai.transcription .Values.openai.feedback -}}
bot: [botToken, botWebhookSecret, pseudonymKey, s3AccessKey, s3SecretKey, postgresUrl, kafkaSaslPassword]
ingest: [pseudonymKey, clickhouseUrl, kafkaSaslPassword]
migrations: [postgresUrl, clickhouseUrl]
answers: [s3AccessKey, s3SecretKey, kafkaSaslPassword{{ if $openai }}, openaiApiKey{{ end }}]
metrics: [kafkaSaslPassword]
{{- end }}

{{/* Variable name of each secret setting. */}}
{{- define "speech-coach.secretVars" -}}
botToken: SC_BOT__TOKEN
botWebhookSecret: SC_BOT__WEBHOOK_SECRET
openaiApiKey: SC_OPENAI__API_KEY
pseudonymKey: SC_PRIVACY__PSEUDONYM_KEY
s3AccessKey: SC_S3__ACCESS_KEY
s3SecretKey: SC_S3__SECRET_KEY
postgresUrl: SC_POSTGRES__URL
clickhouseUrl: SC_CLICKHOUSE__URL
kafkaSaslPassword: SC_KAFKA__SASL_PASSWORD
{{- end }}

{{/*
The secret variables of one runtime: (dict "ctx" $ "runtime" "bot"). The Kafka password only with SASL.
*/}}
{{- define "speech-coach.env" -}}
{{- $ctx := .ctx -}}
{{- $vars := include "speech-coach.secretVars" $ctx | fromYaml -}}
{{- $secrets := index (include "speech-coach.runtimeSecrets" $ctx | fromYaml) .runtime -}}
{{- if not $secrets }}{{ fail (printf "no secret list for runtime %s" .runtime) }}{{ end -}}
{{- range $secrets }}
{{- if or (ne . "kafkaSaslPassword") $ctx.Values.kafka.saslMechanism }}
{{ include "speech-coach.secretEnv" (dict "ctx" $ctx "env" (get $vars .) "ref" (get $ctx.Values.secrets .)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pairs "<Secret name>/<key>" a runtime's pods may read (the Flink pods' admission policy allows exactly these).
*/}}
{{- define "speech-coach.secretPairs" -}}
{{- $ctx := .ctx -}}
{{- $pairs := list -}}
{{- range .refs }}
{{- $ref := get $ctx.Values.secrets . }}
{{- if or (ne . "kafkaSaslPassword") $ctx.Values.kafka.saslMechanism }}
{{- $pairs = append $pairs (printf "%s/%s" (default $ctx.Values.secrets.existingSecret $ref.name) $ref.key) }}
{{- end }}
{{- end }}
{{- toJson $pairs }}
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

{{/*
The Kafka CA certificate (kafka.caCert) of a Kafka client's pod: its env, volume and mount, each empty without one.
The variable is set where the file is mounted, not in the ConfigMap, which Dagster's pods read too.
*/}}
{{- define "speech-coach.kafkaCaPath" -}}/etc/speech-coach/kafka-ca{{- end }}

{{- define "speech-coach.kafkaCaEnv" -}}
{{- with .Values.kafka.caCert }}{{ if or .secretName .configMapName }}
- name: SC_KAFKA__SSL_CA_LOCATION
  value: {{ printf "%s/ca.crt" (include "speech-coach.kafkaCaPath" $) | quote }}
{{- end }}{{ end }}
{{- end }}

{{- define "speech-coach.kafkaCaVolume" -}}
{{- with .Values.kafka.caCert }}{{ if or .secretName .configMapName }}
- name: kafka-ca
  {{- if .secretName }}
  secret:
    secretName: {{ .secretName }}
    items: [{ key: {{ .key }}, path: ca.crt }]
  {{- else }}
  configMap:
    name: {{ .configMapName }}
    items: [{ key: {{ .key }}, path: ca.crt }]
  {{- end }}
{{- end }}{{ end }}
{{- end }}

{{- define "speech-coach.kafkaCaMount" -}}
{{- with .Values.kafka.caCert }}{{ if or .secretName .configMapName }}
- { name: kafka-ca, mountPath: {{ include "speech-coach.kafkaCaPath" $ }}, readOnly: true }
{{- end }}{{ end }}
{{- end }}

{{/* A list of strings as the inside of a CEL list literal: 'a', 'b'. */}}
{{- define "speech-coach.celList" -}}
{{- $out := list -}}
{{- range . }}{{ $out = append $out (printf "'%s'" .) }}{{ end -}}
{{- join ", " $out -}}
{{- end }}

{{/*
One egress rule, to a destination of networkPolicy.egress: (dict "ctx" $ "name" "kafka"). Empty `to` and `ports`
take the defaults the chart knows (Strimzi's pods, the in-release ClickHouse, the ports in the configured addresses).
*/}}
{{- define "speech-coach.egressRule" -}}
{{- $ctx := .ctx -}}
{{- $dest := get $ctx.Values.networkPolicy.egress .name -}}
{{- $to := $dest.to -}}
{{- $ports := $dest.ports -}}
{{- if and (eq .name "kafka") (not $to) $ctx.Values.kafka.strimzi.enabled (not $ctx.Values.kafka.bootstrapServers) -}}
{{- $to = list (dict "podSelector" (dict "matchLabels" (dict "strimzi.io/cluster" (include "speech-coach.strimziClusterName" $ctx)))) -}}
{{- end -}}
{{- if and (eq .name "kafka") (not $ports) -}}
{{- range splitList "," (include "speech-coach.kafkaBootstrap" $ctx) -}}
{{- $ports = append $ports (dict "port" (regexFind "[0-9]+$" . | int) "protocol" "TCP") -}}
{{- end -}}
{{- $ports = uniq $ports -}}
{{- end -}}
{{- if and (eq .name "clickhouse") (not $to) $ctx.Values.clickhouse.inCluster.enabled -}}
{{- $to = list (dict "podSelector" (dict "matchLabels" (include "speech-coach.selectorLabels" (dict "ctx" $ctx "component" "clickhouse") | fromYaml))) -}}
{{- end -}}
{{- if and (eq .name "s3") (not $ports) -}}
{{- $url := urlParse (default "https://s3.amazonaws.com" $ctx.Values.s3.endpointUrl) -}}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host) -}}
{{- $ports = list (dict "port" (default (ternary 443 80 (eq $url.scheme "https")) (atoi $port)) "protocol" "TCP") -}}
{{- end -}}
{{- if not $ports }}{{ fail (printf "networkPolicy.egress.%s.ports: give at least one port" .name) }}{{ end -}}
# {{ .name }}
- ports: {{- toYaml $ports | nindent 4 }}
  {{- with $to }}
  to: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
