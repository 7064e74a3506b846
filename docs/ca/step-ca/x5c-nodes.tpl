{{- /* nodes.tpl for an X5C provisioner whose roots are the CA's own root (docs/tpm.md): that root
  also issued every node's kubelet certificates (CN system:node:<name>), whose key files sit on the
  node's disk. step-ca 0.19 (authority/provisioner/x5c.go) sets .AuthorizationCrt to the
  certificate that signed the token; refusing Kubernetes identities leaves the machine
  certificates (CN the bare node name, key in the TPM) as the only ones that enrol. `fail`
  (go.step.sm/crypto x509util) makes step-ca answer 400 with this message. */ -}}
{{- if hasPrefix "system:" .AuthorizationCrt.Subject.CommonName }}
{{- fail (printf "x5c-nodes.tpl: the token is signed by %q, a Kubernetes identity, not a machine certificate" .AuthorizationCrt.Subject.CommonName) }}
{{- end }}
{{- /* A machine enrols its own node alone: the kubelet's CN (the token's subject) must be
  system:node: followed by the machine certificate's CN (kubernetes' Node authorizer names the
  node by that CN). */ -}}
{{- $node := printf "system:node:%s" .AuthorizationCrt.Subject.CommonName }}
{{- if ne .Subject.CommonName $node }}
{{- fail (printf "x5c-nodes.tpl: the machine certificate of %q enrols %q only, not %q" .AuthorizationCrt.Subject.CommonName $node .Subject.CommonName) }}
{{- end }}
{
	"subject": {
		"commonName": {{ toJson .Subject.CommonName }},
		"organization": {{ toJson .organization }}
	},
	"dnsNames": {{ toJson .Insecure.CR.DNSNames }},
	"ipAddresses": {{ toJson .Insecure.CR.IPAddresses }},
	"emailAddresses": {{ toJson .Insecure.CR.EmailAddresses }},
	"uris": {{ toJson .Insecure.CR.URIs }},
	"keyUsage": ["digitalSignature", "keyEncipherment"],
	"extKeyUsage": ["serverAuth", "clientAuth"]
}
