{{/* Names, labels and the stores' Secret, shared by every template. */}}
{{- define "b2c.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "b2c.fullname" -}}
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

{{- define "b2c.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "b2c.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* selector labels of one component: include "b2c.selector" (list . "processor") */}}
{{- define "b2c.selector" -}}
app.kubernetes.io/name: {{ include "b2c.name" (index . 0) }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "b2c.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "b2c.collectorImage" -}}
{{- printf "%s:%s" .Values.collectorImage.repository (default .Chart.AppVersion .Values.collectorImage.tag) -}}
{{- end -}}

{{- define "b2c.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "b2c.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "b2c.storesSecret" -}}
{{- default (printf "%s-stores" (include "b2c.fullname" .)) .Values.stores.existingSecret -}}
{{- end -}}

{{/* an env entry from the stores' Secret: include "b2c.secretEnv" (list . "B2C_X" "keyName") */}}
{{- define "b2c.secretEnv" -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "b2c.storesSecret" (index . 0) }}
      key: {{ index (index . 0).Values.stores.secretKeys (index . 2) }}
{{- end -}}

{{- define "b2c.podAnnotations" -}}
{{- $ctx := index . 0 -}}
{{- if $ctx.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ index . 1 | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{- define "b2c.processorHeadless" -}}
{{- printf "%s-processor-headless" (include "b2c.fullname" .) -}}
{{- end -}}
