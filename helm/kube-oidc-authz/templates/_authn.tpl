{{/* How the authz service learns its issuers (oidc.* flags or an AuthenticationConfiguration), and the CEL it refuses. */}}

{{/* "true" when the authz service reads a structured AuthenticationConfiguration. */}}
{{- define "kube-oidc-authz.structuredAuthn" -}}
{{- if .Values.authenticationConfig }}true{{ end }}
{{- end }}

{{/*
The CEL fields of authenticationConfig, as a JSON list of problems. The authz
service does not evaluate CEL yet and refuses these at start-up (exit 64),
field for field as here: refusing them at render time keeps a pod from
crash-looping on a configuration that could never start.
*/}}
{{- define "kube-oidc-authz.authnCelErrors" -}}
{{- $errs := list }}
{{- $cel := "CEL is not supported yet (the authz service refuses it at start-up)" }}
{{- $cfg := .Values.authenticationConfig }}
{{- if and (kindIs "map" $cfg) (kindIs "slice" $cfg.jwt) }}
{{- range $i, $jwt := $cfg.jwt }}
{{- if kindIs "map" $jwt }}
{{- $at := printf "authenticationConfig.jwt[%d]" $i }}
{{- if kindIs "slice" $jwt.claimValidationRules }}
{{- range $j, $rule := $jwt.claimValidationRules }}
{{- if and (kindIs "map" $rule) (or (not (kindIs "invalid" (index $rule "expression"))) (not (kindIs "invalid" (index $rule "message")))) }}
{{- $errs = append $errs (printf "%s.claimValidationRules[%d].expression: %s; use claim and requiredValue" $at $j $cel) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $jwt.userValidationRules }}
{{- $errs = append $errs (printf "%s.userValidationRules: %s; remove them" $at $cel) }}
{{- end }}
{{- $mappings := $jwt.claimMappings }}
{{- if kindIs "map" $mappings }}
{{- range $name := list "username" "groups" "uid" }}
{{- $m := index $mappings $name }}
{{- if and (kindIs "map" $m) (not (kindIs "invalid" (index $m "expression"))) }}
{{- $errs = append $errs (printf "%s.claimMappings.%s.expression: %s; use claim%s" $at $name $cel (ternary "" " and prefix" (eq $name "uid"))) }}
{{- end }}
{{- end }}
{{- if $mappings.extra }}
{{- $errs = append $errs (printf "%s.claimMappings.extra: %s; remove extra, whose valueExpression is CEL" $at $cel) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $errs | toJson }}
{{- end }}
