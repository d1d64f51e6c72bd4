{{/* Paths inside the pod where the chart mounts its ConfigMaps, Secrets and the service-account token. */}}

{{- define "kube-oidc-authz.paths.envoyDir" -}}/etc/kube-oidc-authz/envoy{{- end }}
{{- define "kube-oidc-authz.paths.tlsDir" -}}/etc/kube-oidc-authz/tls{{- end }}
{{- define "kube-oidc-authz.paths.mtlsDir" -}}/etc/kube-oidc-authz/authz-mtls{{- end }}
{{- define "kube-oidc-authz.paths.authnDir" -}}/etc/kube-oidc-authz/authn{{- end }}
{{- define "kube-oidc-authz.paths.auditDir" -}}/etc/kube-oidc-authz/audit{{- end }}
{{- define "kube-oidc-authz.paths.apiserverCaDir" -}}/etc/kube-oidc-authz/apiserver-ca{{- end }}
{{- define "kube-oidc-authz.paths.saDir" -}}/var/run/secrets/kubernetes.io/serviceaccount{{- end }}
