{{/* Names, labels, selector labels and the image reference: the helpers every template uses. */}}

{{/*
Names. The chart name can be overridden with nameOverride, the full name with
fullnameOverride; both are cut to 63 characters, the limit of DNS labels.
*/}}
{{- define "kube-oidc-authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-oidc-authz.fullname" -}}
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

{{/* Name of the ClusterIP Service of the authz service; leaves room for the suffix. */}}
{{- define "kube-oidc-authz.authzServiceName" -}}
{{- printf "%s-authz" (include "kube-oidc-authz.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "kube-oidc-authz.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "kube-oidc-authz.labels" -}}
helm.sh/chart: {{ include "kube-oidc-authz.chart" . }}
{{ include "kube-oidc-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-oidc-authz
{{- end }}

{{/* Selector labels: name and instance only, so they never change on upgrade. */}}
{{- define "kube-oidc-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-oidc-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kube-oidc-authz.serviceAccountName" -}}
{{- default (include "kube-oidc-authz.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}; a digest wins over a tag.
Call with (dict "image" .Values.image "default" .Chart.AppVersion).
*/}}
{{- define "kube-oidc-authz.image" -}}
{{- $img := .image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .default $img.tag | toString) }}
{{- end }}
{{- end }}

{{- define "kube-oidc-authz.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "kube-oidc-authz.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{- define "kube-oidc-authz.auditSecretName" -}}
{{- default (printf "%s-audit" (include "kube-oidc-authz.fullname" .)) .Values.auditProxy.existingSecret }}
{{- end }}
