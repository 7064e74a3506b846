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
